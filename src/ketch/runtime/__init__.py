"""The local runtime behind `ketch up`: pods in network namespaces with transparent capture,
supervised workloads registered with the control plane. See README.md beside this file."""
