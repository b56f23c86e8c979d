"""The fab task collection: thin tasks that parse flags, load the inventory,
call into nodeops, and report."""

from invoke import Collection

from . import lab, lock, monitoring
from .audit import audit
from .backup import backup, restore
from .check import check
from .deploy import deploy
from .exec_ import exec_
from .hostkeys import hostkeys
from .init import init
from .logs import logs
from .promote import promote_standby
from .rollback import rollback
from .rotate import rotate_secrets
from .shards import shards
from .shell import shell
from .status import status
from .verify import verify

ns = Collection()
ns.add_task(init)
ns.add_task(exec_)
ns.add_task(hostkeys)
ns.add_task(logs)
ns.add_task(shell)
ns.add_task(deploy)
ns.add_task(promote_standby)
ns.add_task(status)
ns.add_task(verify)
ns.add_task(check)
ns.add_task(audit)
ns.add_task(rollback)
ns.add_task(rotate_secrets)
ns.add_task(backup)
ns.add_task(shards)
ns.add_task(restore)
ns.add_collection(Collection.from_module(lab))
ns.add_collection(Collection.from_module(lock))
ns.add_collection(Collection.from_module(monitoring))
