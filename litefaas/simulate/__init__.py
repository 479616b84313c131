"""Trace-driven simulation of serverless keep-alive, pre-warm and scaling policies (``litefaas simulate``).

Definitions (every figure the simulator prints follows them):

Workload
    The 2019 Azure Functions trace gives invocation counts per function and minute. *Arrival rule*
    (``--arrivals``): the ``c`` calls of minute ``m`` arrive at ``60 m + 60 u`` seconds, with ``u``
    uniform on [0, 1) and sorted (``uniform``, the default: a Poisson process given its count), or at
    ``60 m + 60 (k + 0.5) / c`` for ``k = 0 … c-1`` (``even``). The random stream of each function is
    seeded by ``--seed`` and a hash of the function's owner/app/function ids, so it does not depend
    on which other functions are sampled. The 2021 trace gives each invocation: it arrives at
    ``end_timestamp - duration`` and runs for ``duration``.
Execution time
    Drawn per invocation from the piecewise-linear distribution through the function's ``_run``
    percentiles (0, 1, 25, 50, 75, 99, 100; the trace excludes cold starts), or, with
    ``--latency-from bench.json``, through one provider's measured ``pNN_ms`` warm latencies.
Memory
    ``_mem.csv`` gives ``AverageAllocatedMb`` per *application*. An application's instance hosts all
    its functions (as on Azure Functions, and as the hybrid histogram policy, which works per
    ``HashApp``, assumes), so the pool is per application and one instance holds the app's average
    allocated memory (per-instance allocation, not split). Apps without a memory row get the median
    of the trace's apps; the 2021 trace has no memory data (``--memory-mb``, default 256).
    Per-function memory figures split their app's evenly over the app's functions in the trace.
Pool and cold starts
    Each application has a pool of instances taking ``--concurrency`` requests each (1 as on Lambda).
    A request goes to an instance with a free slot (busy ones first, then idle ones last in, first
    out); if there is none, a new instance starts and the request waits ``--cold-start-ms`` (default
    1000, or the measured ``cold_start_ms``): a *cold start*. A request that takes an instance still
    loading (pre-warmed or started by the autoscaler) waits for the rest of the load and is a cold
    start too. Requests never queue behind a busy instance; scaling out is unbounded.
Policies
    Decide when an idle instance is evicted, which instances are pre-warmed and how many are kept:
    see :mod:`litefaas.simulate.policies` and :mod:`litefaas.simulate.litefaas_policy`.
Metrics (per policy, per function and overall)
    ``cold_start_pct``: cold starts / invocations; ``cold_start_pct_p75``: 75th percentile of the
    per-function cold-start percentage over functions with at least one call (the paper's plot).
    ``allocated_gb_s`` = R_o: instance lifetime (from the start of loading to eviction, cut at the end
    of the trace's day) × memory, summed; every instance counts: reactive, kept alive, pre-warmed,
    provisioned. ``used_gb_s`` = R_a: execution time × memory / concurrency, summed over requests.
    ``utilization`` R = R_a / R_o. ``wasted_memory_gb_s``: instance time with no request running
    (loading, kept alive, pre-warmed, provisioned and idle) × memory; equal to R_o - R_a at
    concurrency 1. ``p50_ms``/``p99_ms``: latency = wait for a loading instance + execution time.
Cost (per cloud, from :mod:`litefaas.simulate.prices`)
    Requests × request price; execution: each request's time rounded to the cloud's billing step and
    minimum (at concurrency > 1, GCP and Azure bill instance busy time instead) plus the load of each
    reactive cold start where the cloud bills it, × memory (and vCPU on GCP) rates; warm capacity:
    the rest of the instance time (kept alive or pre-warmed) priced as Lambda provisioned
    concurrency, Cloud Run idle minimum instances or Azure Flex always-ready baseline, which is what
    holding those instances costs a user. Free tiers are left out. A platform's own keep-alive is
    free to its users: read ``cost_breakdown_usd`` without ``warm`` for that view.
"""
