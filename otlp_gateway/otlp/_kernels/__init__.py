"""numba kernels over OTLP's protobuf wire format, compiled with the detectors' one JIT policy
(``detectors._kernels.kernel``)."""
