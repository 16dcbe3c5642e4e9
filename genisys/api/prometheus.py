"""/metrics: the controller's Prometheus metrics, as text."""

from genisys.api.base import APIHandler


class MetricsHandler(APIHandler):
    def initialize(self, *, metrics, **deps):
        super().initialize(**deps)
        self.metrics = metrics

    def get(self):
        self.set_header("Content-Type", self.metrics.content_type)
        self.finish(self.metrics.render())


def routes(*, metrics, **deps):
    return [(r"/metrics", MetricsHandler, dict(deps, metrics=metrics))]
