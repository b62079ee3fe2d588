# Benchmark shim, loaded by the Python reference (misp-modules + domaintools-misp) through
# PYTHONPATH: it points DomainTools' Python client at the project's fake DomainTools API on
# loopback, so both servers in bench/run.sh talk to the same upstream. Nothing else changes:
# domaintools_misp still builds one API object per request and asks /v1/account first.
#
# DTBENCH_API_URL     where the fake listens, e.g. http://127.0.0.1:47300 (required; without it
#                     this shim does nothing, so an unset variable can never reach the real API
#                     by accident: the run would fail on the missing host instead).
# DTBENCH_RATE_LIMIT  "1" keeps the client's default rate limiter (it sleeps between calls to a
#                     product, per the account's per-minute limits: 3 s for Iris Investigate on
#                     the recorded account); anything else turns it off, so the benchmark
#                     measures the server rather than a sleep. bench/run.sh uses "0" for the
#                     throughput runs and "1" to count upstream calls as deployed.
import functools
import os

_api_url = os.environ.get("DTBENCH_API_URL")

if _api_url:
    import domaintools

    _original_init = domaintools.API.__init__
    _rate_limit = os.environ.get("DTBENCH_RATE_LIMIT") == "1"

    @functools.wraps(_original_init)
    def _init(self, *args, **kwargs):
        kwargs["api_url"] = _api_url
        kwargs.pop("api_port", None)
        kwargs["rate_limit"] = _rate_limit
        _original_init(self, *args, **kwargs)

    domaintools.API.__init__ = _init
