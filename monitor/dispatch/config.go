package dispatch

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/monitor/trust"
)

// Configuration keys, read from the environment or, failing that, from confPath.
const (
	envTrusted   = "CONMON_GO_RUNTIME_TRUSTED"
	envUntrusted = "CONMON_GO_RUNTIME_UNTRUSTED"
	envDefault   = "CONMON_GO_DEFAULT_TRUST"
	envStateDir  = "CONMON_GO_TRUST_STATE_DIR"
)

// Variables so that tests can point them into a temporary directory.
var (
	confPath   = "/etc/conmon-go/trust.conf"
	syslogPath = "" // the system's syslog socket
)

// loadSettings resolves the configuration: each variable from the environment if set
// and non-empty, else from the configuration file.
func loadSettings(getenv func(string) string) (trust.Settings, error) {
	conf, err := readConf(confPath)
	if err != nil {
		return trust.Settings{}, err
	}
	get := func(key string) string {
		if v := getenv(key); v != "" {
			return v
		}
		return conf[key]
	}
	s := trust.Settings{
		Trusted:      get(envTrusted),
		Untrusted:    get(envUntrusted),
		DefaultTrust: get(envDefault),
		StateDir:     get(envStateDir),
	}
	if s.StateDir == "" {
		return s, errors.New(envStateDir + " is not set: the dispatching runtime needs a trust state dir")
	}
	if s.DefaultTrust != "" && s.DefaultTrust != "trusted" && s.DefaultTrust != "untrusted" {
		return s, fmt.Errorf("invalid %s value %q (must be \"trusted\" or \"untrusted\")", envDefault, s.DefaultTrust)
	}
	if s.Trusted == "" {
		s.Trusted = "runc"
	}
	if s.Trusted, err = resolveRuntime("trusted", s.Trusted); err != nil {
		return s, err
	}
	if s.Untrusted != "" {
		if s.Untrusted, err = resolveRuntime("untrusted", s.Untrusted); err != nil {
			return s, err
		}
	}
	return s, nil
}

// resolveRuntime looks a bare name up in PATH, checks that the result is executable and
// refuses the dispatcher itself, which would exec itself forever.
func resolveRuntime(kind, path string) (string, error) {
	if !strings.ContainsRune(path, '/') {
		found := ""
		for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
			if dir == "" {
				dir = "."
			}
			p := filepath.Join(dir, path)
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && unix.Access(p, unix.X_OK) == nil {
				found = p
				break
			}
		}
		if found == "" {
			return "", fmt.Errorf("%s runtime %q not found in PATH", kind, path)
		}
		path = found
	}
	if err := unix.Access(path, unix.X_OK); err != nil {
		return "", fmt.Errorf("%s runtime path %s is not valid: %w", kind, path, err)
	}
	self, err1 := os.Stat("/proc/self/exe")
	target, err2 := os.Stat(path)
	if err1 == nil && err2 == nil && os.SameFile(self, target) {
		return "", fmt.Errorf("%s runtime %s is the dispatching runtime itself", kind, path)
	}
	return path, nil
}

// readConf parses KEY=VALUE lines; blank lines and lines starting with # are skipped,
// one pair of surrounding quotes is removed. A missing file is an empty configuration;
// an unknown key is an error, since a misspelt one would silently change the choice.
func readConf(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	conf := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		switch key {
		case envTrusted, envUntrusted, envDefault, envStateDir:
		default:
			ok = false
		}
		if !ok {
			return nil, fmt.Errorf("%s:%d: expected one of %s, %s, %s, %s as KEY=VALUE", path, n, envTrusted, envUntrusted, envDefault, envStateDir)
		}
		if len(val) >= 2 && (val[0] == '"' || val[0] == '\'') && val[len(val)-1] == val[0] {
			val = val[1 : len(val)-1]
		}
		conf[key] = val
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return conf, nil
}
