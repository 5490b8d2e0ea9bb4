package monitor

import (
	"strings"
	"testing"

	"github.com/conmon-go/conmon-go/monitor/cli"
)

// The runtime's argv is a contract (docs/lifecycle.md §5.1): global options before the
// sub-command, fixed sub-command options, --runtime-opt after them, the id last.
func TestRuntimeArgv(t *testing.T) {
	for _, tc := range []struct {
		name string
		args string
		want string
	}{
		{"create", "-c C -u U -r /rt -b /b -p /p -l none -s --no-pivot --no-new-keyring --runtime-arg --log-format=json --runtime-opt --preserve-fds --runtime-opt 2",
			"/rt --systemd-cgroup --log-format=json create --bundle /b --pid-file /p --no-pivot --no-new-keyring --preserve-fds 2 C"},
		{"restore", "-c C -u U -r /rt -b /b -p /p -l none --restore /ck --runtime-opt --tcp-established",
			"/rt restore --bundle /b --pid-file /p --detach --image-path /ck --work-path /b --tcp-established C"},
		{"exec", "-c C -u U -r /rt -b /s -p /s/pid -l none -s --no-pivot -e --exec-process-spec /spec --runtime-arg --root=/r --api-version 1",
			"/rt --root=/r exec --pid-file /s/pid --process /spec --detach C"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts, err := cli.Parse(strings.Fields(tc.args))
			if err != nil {
				t.Fatal(err)
			}
			m := &monitor{opts: opts, runtimePath: opts.Runtime, runtimeArgs: opts.RuntimeArgs}
			if got := strings.Join(m.runtimeArgv(), " "); got != tc.want {
				t.Errorf("argv\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}
