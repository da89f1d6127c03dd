"""Seeing inside a running process: Prometheus metrics, structured logs and OpenTelemetry traces.

Everything here attaches from the outside (an event observer, Dramatiq middleware, gRPC interceptors, ASGI
middleware): nothing in the order pipeline calls it.
"""
