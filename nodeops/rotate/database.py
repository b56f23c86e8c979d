"""The database password's change (a rotation kind of the engine's, ``postgres-password``): ALTER ROLE with a SCRAM
verifier computed here, by an admin role, over a tunnel on the bastion (nodeops.edges.postgres)."""

from __future__ import annotations

from nodeops.edges.postgres import scram_verifier, sql
from nodeops.lease import ADMIN_DATABASE, database
from nodeops.rotate.versions import Target
from nodeops.secrets import Secret


class PostgresPassword(Target):
    """The service's database role: ALTER ROLE by an admin role, over a tunnel on the bastion."""

    rolls = True

    def alter(self, password: Secret) -> None:
        job, spec = self.rotation.job, self.spec
        admin, admin_password = job.secrets[spec.admin_user].reveal(), job.secrets[spec.admin_password].reveal()
        with database(self.rotation.fleet, job, admin, admin_password, ADMIN_DATABASE,
                      f"ALTER ROLE {self.account} as the admin role ({spec.admin_user})") as conn:  # fmt: skip
            # As psql's \password: the verifier is computed here; the password never reaches the server or its log.
            verifier = scram_verifier(conn, self.user, password.reveal())
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(self.user), sql.Literal(verifier)))

    def set(self) -> None:
        self.alter(self.pending)
        self.say("setSecret", f"ALTER ROLE {self.account}: the database now takes the pending password (a SCRAM "
                 "verifier computed here; running nodes keep their connections)")  # fmt: skip

    def test(self) -> None:
        with database(self.rotation.fleet, self.rotation.job, self.user, self.pending.reveal(),
                      purpose=f"log in as {self.account} with the pending password") as conn:  # fmt: skip
            conn.execute("SELECT 1")
        self.say("testSecret", f"logged in as {self.account} with the pending password")

    def undo(self) -> str:
        self.alter(self.current)
        return f"the database role {self.account} is back on its current password"

    @property
    def changes(self) -> str:
        return f"the password of the database role {self.account}"
