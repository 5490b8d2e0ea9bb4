// Package person holds integration tests of the commands for people, run as a person
// would: `conmon-go run` and `conmon-go attach` on real terminals (tmux panes: raw mode,
// window size changes seen inside the container, detach keys, the terminal's settings
// after run is killed), exit statuses, stdin, attaching to containers that podman started
// with conmon-go and with conmon, systemd notifications against a NOTIFY_SOCKET listener,
// and bad input. Everything is in the _test.go files; run with
//
//	go test -count=1 ./hack/e2e/person/
//
// The tests need root, runc, busybox and tmux (podman for the podman tests); they skip
// otherwise.
package person
