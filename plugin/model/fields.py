"""Canonical ECS field names and, as data, each source format's names for them.

One table per format. Each serves both sides: a rule written in that format's field names reads
the ECS field, and an event arriving in that format is decoded into the same ECS field, so a rule
of one shape fires on every shape that carries the information.
"""

from __future__ import annotations

__all__ = ["ECS_FIELDS", "known_fields", "SYSMON_FIELDS", "AUDITD_FIELDS", "SIGMA_FIELDS", "WAZUH_FIELDS", "FIELD_MAPS",
           "sigma_field", "wazuh_field"]

# Sysmon EventData names (Windows and Linux) -> ECS. Where ECS has no faithful counterpart the value
# stays under winlog.event_data, as Winlogbeat writes it: `User` is "DOMAIN\\user" (ECS user.name has
# no domain; rules test the domain part, "NT AUTHORITY" in any language) and `Hashes` is
# "SHA1=..,MD5=..,IMPHASH=..". Sysmon decoders also fill user.name / user.domain and process.hash.*.
SYSMON_FIELDS: dict[str, str] = {
    "Image": "process.executable",
    "OriginalFileName": "process.pe.original_file_name",
    "CommandLine": "process.command_line",
    "CurrentDirectory": "process.working_directory",
    "ProcessId": "process.pid",
    "ProcessGuid": "process.entity_id",
    "IntegrityLevel": "winlog.event_data.IntegrityLevel",
    "User": "winlog.event_data.User",
    "LogonId": "winlog.event_data.LogonId",
    "LogonGuid": "winlog.event_data.LogonGuid",
    "TerminalSessionId": "winlog.event_data.TerminalSessionId",
    "Hashes": "winlog.event_data.Hashes",
    "Product": "process.pe.product",
    "Company": "process.pe.company",
    "Description": "process.pe.description",
    "FileVersion": "process.pe.file_version",
    "ParentImage": "process.parent.executable",
    "ParentCommandLine": "process.parent.command_line",
    "ParentProcessId": "process.parent.pid",
    "ParentProcessGuid": "process.parent.entity_id",
    "ParentUser": "winlog.event_data.ParentUser",
    "ComputerName": "host.name",
    "DestinationIp": "destination.ip",
    "DestinationPort": "destination.port",
    "DestinationHostname": "destination.domain",
    "SourceIp": "source.ip",
    "SourcePort": "source.port",
    "Protocol": "network.transport",
    "TargetFilename": "file.path",
}

# auditd record fields (and Sigma's linux/auditd field names, which are the same) -> ECS.
AUDITD_FIELDS: dict[str, str] = {
    "type": "auditd.message_type",
    "exe": "process.executable",
    "comm": "process.name",
    "cwd": "process.working_directory",
    "pid": "process.pid",
    "ppid": "process.parent.pid",
    "uid": "user.id",
    "auid": "user.audit.id",
    "euid": "user.effective.id",
    "gid": "group.id",
    "key": "tags",
    "name": "file.path",
    "SYSCALL": "auditd.data.syscall",
    "argc": "process.args_count",
}
for _i in range(0, 32):
    AUDITD_FIELDS[f"a{_i}"] = f"process.args.{_i}"

# Sigma names its fields after the log source: Sysmon's for Windows and linux process_creation,
# auditd's for linux/auditd.
SIGMA_FIELDS: dict[str, str] = {**SYSMON_FIELDS, **AUDITD_FIELDS}

# Wazuh alert / archive field names -> ECS. `full_log` is the whole text Wazuh matched; for process
# events its faithful counterpart is the command line (the Wazuh event decoder fills it that way).
WAZUH_FIELDS: dict[str, str] = {
    "full_log": "process.command_line",
    "data.command": "process.command_line",
    "data.audit.command": "process.name",
    "data.audit.exe": "process.executable",
    "data.audit.cwd": "process.working_directory",
    "data.audit.pid": "process.pid",
    "data.audit.ppid": "process.parent.pid",
    "data.audit.uid": "user.id",
    "data.audit.euid": "user.effective.id",
    "data.audit.auid": "user.audit.id",
    "data.audit.gid": "group.id",
    "data.audit.key": "tags",
    "data.srcuser": "user.name",
    "data.dstuser": "user.target.name",
}
for _i in range(0, 32):
    WAZUH_FIELDS[f"data.audit.execve.a{_i}"] = f"process.args.{_i}"


# Everything that decides how a rule's field names are read; part of the database cache key.
FIELD_MAPS: tuple[dict[str, str], ...] = (SIGMA_FIELDS, WAZUH_FIELDS)


def sigma_field(name: str) -> str | None:
    """ECS name for a Sigma field, or None when the map has none."""
    return SIGMA_FIELDS.get(name)


def wazuh_field(name: str) -> str | None:
    """ECS name for a Wazuh field, or None when the map has none."""
    return WAZUH_FIELDS.get(name)


# ECS fields the input formats fill or process events commonly carry, beyond those the tables map
# to: what an option naming event fields (--suppress-by) may name besides the rules' own fields.
ECS_FIELDS: frozenset[str] = frozenset((
    "@timestamp", "message", "tags", "labels",
    "agent.id", "agent.name", "agent.type",
    "cloud.account.id", "cloud.instance.id", "cloud.provider", "cloud.region",
    "container.id", "container.image.name", "container.name",
    "event.action", "event.category", "event.code", "event.dataset", "event.id", "event.module",
    "event.provider", "event.type",
    "host.domain", "host.hostname", "host.id", "host.ip", "host.mac", "host.name", "host.os.family",
    "host.os.name", "host.os.platform", "host.os.type",
    "orchestrator.cluster.name", "orchestrator.namespace", "orchestrator.resource.name",
    "process.args", "process.command_line", "process.entity_id", "process.executable", "process.hash.sha256",
    "process.name", "process.pid", "process.title", "process.working_directory",
    "process.parent.args", "process.parent.command_line", "process.parent.entity_id",
    "process.parent.executable", "process.parent.name", "process.parent.pid",
    "process.group_leader.entity_id", "process.session_leader.entity_id",
    "source.ip", "source.port", "destination.ip", "destination.port", "destination.domain",
    "user.domain", "user.effective.id", "user.effective.name", "user.id", "user.name",
    "group.id", "group.name", "file.path",
))


def known_fields(extra: frozenset[str] | set[str] = frozenset()) -> frozenset[str]:
    """ECS field names the engine can read in an event: ECS_FIELDS, every field a format table maps
    to, and `extra` (the loaded rules' fields)."""
    mapped = {v for table in (SYSMON_FIELDS, AUDITD_FIELDS, WAZUH_FIELDS) for v in table.values()}
    return ECS_FIELDS | mapped | extra
