"""Entry point for `fab` in the source repository: the task collection lives in tasks/, and the running
`fab` becomes the `nodeops` program (tasks/program.py), so both read flags and exit alike."""

from tasks import ns  # noqa: F401 (fab looks for `ns`)
from tasks.program import adopt_running_fab

adopt_running_fab()
