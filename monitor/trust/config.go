package trust

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"slices"
)

// ociConfig is the part of the bundle's config.json that the decision reads. It is decoded
// with encoding/json, as CRI-O and runc decode the whole document, so an annotation or a
// namespace cannot read differently here than it does to them.
type ociConfig struct {
	Annotations map[string]string `json:"annotations"`
	Linux       *struct {
		Namespaces []ociNamespace `json:"namespaces"`
	} `json:"linux"`
}

// ociNamespace is one entry of linux.namespaces. Only its type matters: an entry with a
// path joins a namespace (the pod's), which is no more the host's than a new one.
type ociNamespace struct {
	Type string `json:"type"`
}

func readConfig(path string) (*ociConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, pe.Err // the path is already in the caller's message
		}
		return nil, err
	}
	cfg := new(ociConfig)
	if err := json.Unmarshal(data, cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// hasNamespace reports whether the container gets its own (or the pod's, with a path)
// namespace of type ns; without one it shares the host's.
func (c *ociConfig) hasNamespace(ns string) bool {
	return c.Linux != nil && slices.ContainsFunc(c.Linux.Namespaces, func(n ociNamespace) bool { return n.Type == ns })
}
