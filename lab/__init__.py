"""The local lab: real OpenSSH hosts in network namespaces behind a real bastion.

``topology`` plans it (pure); ``host`` makes it real on this machine (root only).
"""
