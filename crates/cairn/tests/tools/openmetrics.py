"""Parses OpenMetrics text from stdin with the Prometheus project's own
parser (prometheus_client.openmetrics.parser, strict: it raises on any
deviation from the format) and prints every sample as JSON,
{"name{label=\"value\",...}": value}."""
import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

samples = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    for sample in family.samples:
        labels = ",".join('%s="%s"' % (k, v) for k, v in sorted(sample.labels.items()))
        samples["%s{%s}" % (sample.name, labels)] = sample.value
print(json.dumps(samples))
