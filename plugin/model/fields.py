"""Canonical ECS field names and, as data, each source format's names for them."""

from __future__ import annotations

__all__ = ["SIGMA_FIELDS", "WAZUH_FIELDS", "FIELD_MAPS", "sigma_field", "wazuh_field"]

# Sigma (Sysmon / Windows process_creation and linux) field names -> ECS.
SIGMA_FIELDS: dict[str, str] = {
    "Image": "process.executable",
    "OriginalFileName": "process.pe.original_file_name",
    "CommandLine": "process.command_line",
    "CurrentDirectory": "process.working_directory",
    "ProcessId": "process.pid",
    "ProcessGuid": "process.entity_id",
    "IntegrityLevel": "winlog.event_data.IntegrityLevel",
    "User": "user.name",
    "LogonId": "winlog.event_data.LogonId",
    "Hashes": "process.hash.sha256",
    "Product": "process.pe.product",
    "Company": "process.pe.company",
    "Description": "process.pe.description",
    "FileVersion": "process.pe.file_version",
    "ParentImage": "process.parent.executable",
    "ParentCommandLine": "process.parent.command_line",
    "ParentProcessId": "process.parent.pid",
    "ParentProcessGuid": "process.parent.entity_id",
    "ParentUser": "process.parent.user.name",
    "ComputerName": "host.name",
    "DestinationIp": "destination.ip",
    "DestinationPort": "destination.port",
    "DestinationHostname": "destination.domain",
    "SourceIp": "source.ip",
    "SourcePort": "source.port",
    "TargetFilename": "file.path",
    # linux auditd (Sigma's auditd logsource)
    "type": "auditd.message_type",
    "exe": "process.executable",
    "comm": "process.name",
    "cwd": "process.working_directory",
    "uid": "user.id",
    "auid": "user.audit.id",
    "euid": "user.effective.id",
    "key": "tags",
    "name": "file.path",
    "SYSCALL": "auditd.data.syscall",
}
for _i in range(0, 32):
    SIGMA_FIELDS[f"a{_i}"] = f"process.args.{_i}"

# Wazuh alert field names -> ECS. `full_log` is the whole text Wazuh matched; for process
# events its faithful counterpart is the command line.
WAZUH_FIELDS: dict[str, str] = {
    "full_log": "process.command_line",
    "data.command": "process.command_line",
    "data.audit.command": "process.name",
    "data.audit.exe": "process.executable",
    "data.audit.cwd": "process.working_directory",
    "data.audit.uid": "user.id",
    "data.audit.euid": "user.effective.id",
    "data.audit.auid": "user.audit.id",
    "data.srcuser": "user.name",
    "data.dstuser": "user.target.name",
    "data.audit.execve.a0": "process.args.0",
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
