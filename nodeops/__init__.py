"""nodeops: operate active/standby blockchain node pairs behind an SSH bastion."""

__version__ = "0.1.0"
