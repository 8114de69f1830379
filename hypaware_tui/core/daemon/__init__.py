"""The capture daemon (daemon.md): the foreground loop (`loop`), process control and status (`control`),
service managers (`service`), capture start (`capture`) and the wizard's daemon action (`action`)."""
