"""Sample applications for Ketch: Bookinfo, an httpbin-like service, a fortio-like load
client and tcp-echo. They know nothing of the mesh: they address peers by service name and
port only, exactly as the originals do inside Kubernetes."""
