package annotations

import (
	"strings"
	"testing"
)

// TestKeys checks every constant against the table of docs/trust.md §8.
func TestKeys(t *testing.T) {
	table := map[string]string{
		"Annotations": Annotations, "ContainerID": ContainerID, "ContainerName": ContainerName,
		"ContainerType": ContainerType, "Created": Created, "HostName": HostName, "Image": Image,
		"KubeName": KubeName, "Labels": Labels, "LogPath": LogPath, "Metadata": Metadata,
		"Name": Name, "PrivilegedRuntime": PrivilegedRuntime, "ResolvPath": ResolvPath,
		"SandboxID": SandboxID, "SandboxName": SandboxName, "ShmPath": ShmPath, "TTY": TTY,
		"Stdin": Stdin, "StdinOnce": StdinOnce, "TrustedSandbox": TrustedSandbox,
	}
	if len(table) != 21 {
		t.Fatalf("table has %d keys, spec has 21", len(table))
	}
	const prefix = "io.kubernetes.cri-o."
	seen := map[string]bool{}
	for name, key := range table {
		if !strings.HasPrefix(key, prefix) {
			t.Errorf("%s = %q lacks the %s prefix", name, key, prefix)
		}
		if key != prefix+name {
			t.Errorf("%s = %q, spec says %q", name, key, prefix+name)
		}
		if seen[key] {
			t.Errorf("duplicate key %q", key)
		}
		seen[key] = true
	}
	if ContainerTypeSandbox != "sandbox" || ContainerTypeContainer != "container" {
		t.Errorf("ContainerType values %q/%q", ContainerTypeSandbox, ContainerTypeContainer)
	}
}
