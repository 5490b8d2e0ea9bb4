package e2eutil

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// ProcValue returns the first field after key in a /proc file of "Key: value" lines
// (/proc/<pid>/status, smaps_rollup).
func ProcValue(path, key string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), key); ok {
			if fields := strings.Fields(rest); len(fields) > 0 {
				return fields[0], nil
			}
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return "", fmt.Errorf("%s: no %s", path, key)
}
