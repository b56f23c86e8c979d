"""The fab task collection: thin tasks that parse flags, load the inventory,
call into nodeops, and report."""

from invoke import Collection

from tasks import lab, lock
from tasks.audit import audit
from tasks.backup import backup, restore
from tasks.check import check
from tasks.deploy import deploy
from tasks.exec_ import exec_
from tasks.promote import promote_standby
from tasks.rollback import rollback
from tasks.rotate import rotate_secrets
from tasks.status import status
from tasks.verify import verify

ns = Collection()
ns.add_task(exec_)
ns.add_task(deploy)
ns.add_task(promote_standby)
ns.add_task(status)
ns.add_task(verify)
ns.add_task(check)
ns.add_task(audit)
ns.add_task(rollback)
ns.add_task(rotate_secrets)
ns.add_task(backup)
ns.add_task(restore)
ns.add_collection(Collection.from_module(lab))
ns.add_collection(Collection.from_module(lock))
