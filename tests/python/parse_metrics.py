"""Reads a /metrics exposition (OpenMetrics text) on stdin with the official Prometheus client's
parser and prints every sample as JSON: {"name{label=value,...}": value}, labels sorted."""

import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families


def main() -> None:
    samples = {}
    for family in text_string_to_metric_families(sys.stdin.read()):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    json.dump(samples, sys.stdout)


if __name__ == "__main__":
    main()
