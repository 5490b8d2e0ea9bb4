package stress

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/conmon-go/conmon-go/hack/e2e/e2eutil"
)

// engineEnv makes the test binary an engine (engineMain): it starts a monitor, tells the
// test how far it got on stdout, and then only holds its ends of the fds until killed.
const engineEnv = "CONMON_STRESS_ENGINE"

type engineSpec struct {
	Monitor e2eutil.MonitorSpec
	ReadPid bool // read the pid from the sync pipe before reporting; else report right after the launcher's exit
}

func engineMain(spec string) int {
	var s engineSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		fmt.Println("error", err)
		return 1
	}
	m, err := e2eutil.StartMonitor(s.Monitor)
	if err == nil {
		err = m.WriteStart()
	}
	if err == nil {
		var code int
		if code, err = m.Wait(20 * time.Second); err == nil && code != 0 {
			err = fmt.Errorf("launcher exit status %d: %s", code, m.Stderr.String())
		}
	}
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	if s.ReadPid {
		msg, err := m.ReadSync(60 * time.Second)
		if err != nil {
			fmt.Println("error", err)
			return 1
		}
		fmt.Printf("sync %s\n", strings.TrimSpace(msg.Raw))
	} else {
		fmt.Println("launched")
	}
	time.Sleep(time.Hour) // holds the sync pipe until the test kills it
	return 0
}

// The engine that started the monitor is SIGKILLed, before it read the pid or after: the
// monitor carries on, the container runs (started by the test, as a restarted engine
// would), all its output reaches the log, and the exit file is written at its exit.
func TestEngineKilled(t *testing.T) {
	setup(t)
	for _, readPid := range []bool{false, true} {
		name := "before-pid"
		if readPid {
			name = "after-pid"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			g := newGroup(t)
			const ticks = 20
			c := g.mustCtr(t, false, nil, "sh", "-c",
				fmt.Sprintf("i=0; while [ $i -lt %d ]; do echo tick $i; i=$((i+1)); sleep 0.05; done; exit 42", ticks))
			spec, err := json.Marshal(engineSpec{Monitor: c.spec(monitorPath), ReadPid: readPid})
			if err != nil {
				t.Fatal(err)
			}
			engine := exec.Command(os.Args[0], "-test.run=^$")
			engine.Env = append(os.Environ(), engineEnv+"="+string(spec))
			engine.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			out, err := engine.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := engine.Start(); err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(out).ReadString('\n')
			_ = engine.Process.Kill()
			_ = engine.Wait()
			switch {
			case err != nil:
				t.Fatalf("engine: %v", err)
			case readPid && !strings.HasPrefix(line, `sync {"pid": `):
				t.Fatalf("engine: %q, want the pid", line)
			case !readPid && line != "launched\n":
				t.Fatalf("engine: %q", line)
			}
			// The runtime writes the pid file when the container is created.
			if _, err := e2eutil.AwaitFile(c.PidFile, 20*time.Second, e2eutil.NonEmpty); err != nil {
				t.Fatal(err)
			}
			mon := c.startCreated(t)
			text := c.waitLog(t, "stdout", fmt.Sprintf("tick %d\n", ticks-1), 20*time.Second)
			var want strings.Builder
			for i := range ticks {
				fmt.Fprintf(&want, "tick %d\n", i)
			}
			if text != want.String() {
				t.Errorf("log after the engine's death: %q, want %q", text, want.String())
			}
			if err := c.finish("42"); err != nil {
				t.Error(err)
			}
			report(t, "after the engine's SIGKILL", "monitor %d logged %d of %d lines, exit file 42", mon.pid, strings.Count(text, "\n"), ticks)
		})
	}
}
