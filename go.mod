module github.com/conmon-go/conmon-go

go 1.26.8

require (
	github.com/containerd/console v1.0.5
	github.com/coreos/go-systemd/v22 v22.7.0
	golang.org/x/sys v0.50.0
)
