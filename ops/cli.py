"""The `gridwatch` command line: one group, subcommands declared next to what they drive."""

from __future__ import annotations

import click

from ops.cmd_bench import bench
from ops.cmd_delivery import cap, notifier, roster
from ops.cmd_detect import detectors, policy, subjects
from ops.cmd_dlq import dlq, lag_cmd, status_cmd
from ops.cmd_grids import grids
from ops.cmd_link import link
from ops.cmd_replay import archive, replay, whatif
from ops.cmd_runtime import broker, demo, devices, topics, worker
from ops.cmd_web import token, web


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gridwatch")
def main() -> None:
    """gridwatch: event-driven early warning for grid governance (网格化治理)."""


for _cmd in (grids, broker, worker, topics, devices, subjects, detectors, policy, roster, notifier, cap,
             dlq, lag_cmd, status_cmd, archive, replay, whatif, web, token, link, demo, bench):
    main.add_command(_cmd)


if __name__ == "__main__":
    main()
