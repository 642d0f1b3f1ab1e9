"""The compiled part of Ketch: the HTTP/1.1 whole-message scanners of the express path
(src/ketch/proxy/_http1_scan.pyx). Everything else is in pyproject.toml.

The extension is optional: without Cython or a C compiler the package installs without it
and llhttp parses every message (the same behaviour, slower)."""

from setuptools import Extension, setup

try:
    from Cython.Build import cythonize
except ImportError:  # no Cython in the build environment: pure Python
    ext_modules = []
else:
    ext_modules = cythonize([Extension("ketch.proxy._http1_scan", ["src/ketch/proxy/_http1_scan.pyx"],
                                       optional=True)],
                            language_level=3, quiet=True)

setup(ext_modules=ext_modules)
