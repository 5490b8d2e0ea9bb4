// Package surface holds integration tests for the rest of the monitor's surface with real
// runc (and podman): OOM files, the sd_notify relay and the monitor's own READY, restore
// argv, preserved and inherited fds, LISTEN_PID, oom_score_adj of children, and syslog.
// They need root, runc and busybox-static and skip without them.
package surface
