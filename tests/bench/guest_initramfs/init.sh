#!/bin/sh
# /init of the QEMU reference guest (tests/bench/live_move_bench): mount the
# basics and hand the serial console to the dirtier. The kernel passes the
# unknown boot arguments dirty_mb=... dirty_rate=... to us as environment.
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
exec /dirtier </dev/console >/dev/console 2>&1
