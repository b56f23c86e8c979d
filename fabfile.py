"""Entry point for `fab`: the task collection lives in tasks/."""

from tasks import ns  # noqa: F401 (fab looks for `ns`)
