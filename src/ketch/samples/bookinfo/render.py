"""The product page's HTML, in the shape of the original's template."""

from __future__ import annotations

from html import escape


def _stars(rating: dict) -> str:
    if "stars" in rating:
        stars = max(0, min(5, int(rating.get("stars", 0))))
        color = escape(str(rating.get("color", "black")))
        full = f'<span class="glyphicon glyphicon-star" style="color: {color}"></span>\n'
        empty = f'<span class="glyphicon glyphicon-star-empty" style="color: {color}"></span>\n'
        return full * stars + empty * (5 - stars)
    if "error" in rating:
        return f"<p><i>{escape(str(rating['error']))}</i></p>\n"
    return ""


def _details_html(status: int, details: dict) -> str:
    if status != 200:
        return ('<h4 class="text-center text-primary">Error fetching product details!</h4>\n'
                f"<p>{escape(str(details.get('error', '')))}</p>\n")
    rows = [("Type", "type"), ("Pages", "pages"), ("Publisher", "publisher"),
            ("Language", "language"), ("ISBN-10", "ISBN-10"), ("ISBN-13", "ISBN-13")]
    items = "".join(f"<dt>{label}:</dt>{escape(str(details.get(key, '')))}\n"
                    for label, key in rows)
    return ('<h4 class="text-center text-primary">Book Details</h4>\n'
            f"<dl>\n{items}</dl>\n")


def _reviews_html(status: int, reviews: dict) -> str:
    if status != 200:
        return ('<h4 class="text-center text-primary">Error fetching product reviews!</h4>\n'
                f"<p>{escape(str(reviews.get('error', '')))}</p>\n")
    parts = ['<h4 class="text-center text-primary">Book Reviews</h4>\n']
    for review in reviews.get("reviews", []):
        parts.append("<blockquote>\n"
                     f"<p>{escape(str(review.get('text', '')))}</p>\n"
                     f"<small>{escape(str(review.get('reviewer', '')))}</small>\n"
                     f"{_stars(review.get('rating') or {})}</blockquote>\n")
    parts.append("<dl>\n<dt>Reviews served by:</dt>\n"
                 f"<u>{escape(str(reviews.get('podname', '')))}</u>\n")
    cluster = reviews.get("clustername", "null")
    if cluster and cluster != "null":
        parts.append(f" on cluster <u>{escape(str(cluster))}</u>\n")
    parts.append("</dl>\n")
    return "".join(parts)


def render_page(product: dict, user: str, details_status: int, details: dict,
                reviews_status: int, reviews: dict) -> str:
    if user:
        nav = (f'<p class="navbar-text navbar-right">Signed in as <b>{escape(user)}</b> '
               '<a href="/logout">sign out</a></p>')
    else:
        nav = ('<form class="navbar-form navbar-right" method="post" action="/login">'
               '<input type="text" name="username" placeholder="User Name">'
               '<input type="password" name="passwd" placeholder="Password">'
               '<button type="submit">Sign in</button></form>')
    return f"""<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>Simple Bookstore App</title></head>
<body>
<nav class="navbar navbar-inverse"><a class="navbar-brand" href="#">BookInfo Sample</a>
{nav}
</nav>
<div class="container-fluid">
<div class="row"><div class="col-md-12">
<h3 class="text-center text-primary">{escape(product['title'])}</h3>
<p>Summary: {product['descriptionHtml']}</p>
</div></div>
<div class="row">
<div class="col-md-6">
{_details_html(details_status, details)}</div>
<div class="col-md-6">
{_reviews_html(reviews_status, reviews)}</div>
</div>
</div>
</body>
</html>
"""
