"""``litefaas bench``: cross-provider latency, throughput, cold start and cost."""
