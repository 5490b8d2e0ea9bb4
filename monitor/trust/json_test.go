package trust

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
)

// jsonConfig is what encoding/json would decode config.json into for the decision.
type jsonConfig struct {
	Annotations map[string]string `json:"annotations"`
	Linux       *struct {
		Namespaces []struct {
			Type string `json:"type"`
			Path string `json:"path"`
		} `json:"namespaces"`
	} `json:"linux"`
}

var configSeeds = []string{
	`{"ociVersion":"1.0.2","process":{"args":["sh"],"env":["A=b"],"rlimits":[{"type":"RLIMIT_NOFILE","hard":1024,"soft":1024}]},` +
		`"annotations":{"io.kubernetes.cri-o.TrustedSandbox":"false","io.kubernetes.cri-o.ContainerType":"sandbox"},` +
		`"linux":{"namespaces":[{"type":"pid"},{"type":"network","path":"/proc/1/ns/net"},{"type":"ipc"}],"resources":{"memory":{"limit":-1.5e3}}}}`,
	`null`, `{}`, `[]`, `"x"`, `0`, `{"annotations":null}`, `{"annotations":{"a":null}}`, `{"annotations":{"a":1}}`,
	`{"annotations":{"a":"1"},"annotations":{"b":"2"}}`, `{"annotations":{"a":"1"},"annotations":null,"annotations":{"b":"2"}}`,
	`{"ANNOTATIONS":{"a":"1"}}`, `{"\u0061nnotations":{"a":"\ud83d\ude00 \ud800 \udc00x \u00e9"}}`, "{\"annotations\":{\"a\":\"\xff\xfe\"}}",
	`{"linux":null}`, `{"linux":5}`, `{"linux":{"namespaces":null}}`, `{"linux":{"namespaces":[null,{"type":null}]}}`,
	`{"linux":{"namespaces":[{"type":"pid"},{"type":"ipc"}]},"linux":{"namespaces":[{"path":"x"}]}}`,
	`{"linux":{"namespaces":[{"type":"pid"},{"type":"ipc"}]},"linux":{"namespaces":[]},"linux":{"namespaces":[{},{}]}}`,
	`{"linux":{"namespaces":[{"type":"pid"},{"type":"ipc"},{"type":"uts"}]},"linux":{"namespaces":[{}]},"linux":{"namespaces":[{},{},{}]}}`,
	`{"linux":{"namespaces":[{"TYPE":"pid","Path":7}]}}`, `{"linux":{"namespaces":{}}}`, `{"linux":{"namespaces":["pid"]}}`,
	`{"a":[1,-0,0.5,1e5,-2E-3,true,false,null,{"b":[]}]}`, `{"a":01}`, `{"a":-}`, `{"a":1.}`, `{"a":1e}`, `{"a":tru}`,
	`{"a":"\x"}`, "{\"a\":\"\t\"}", `{"a" "b"}`, `{"a":1,}`, `[1,]`, `{"a":1} x`, ` {} `, "\ufeff{}", `{"a":"\u12G4"}`,
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001), `{"a":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `}`,
}

// FuzzConfigDecoding: parseConfig accepts exactly what encoding/json accepts and finds
// the same annotations and namespace types.
func FuzzConfigDecoding(f *testing.F) {
	for _, s := range configSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var want jsonConfig
		wantErr := json.Unmarshal(data, &want)
		got, err := parseConfig(data)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("%q: error %v, encoding/json: %v", data, err, wantErr)
		}
		if err != nil {
			return
		}
		if !maps.Equal(got.annotations, want.Annotations) || (got.annotations == nil) != (want.Annotations == nil) {
			t.Errorf("%q: annotations %q, encoding/json: %q", data, got.annotations, want.Annotations)
		}
		var types []string
		if want.Linux != nil {
			for _, n := range want.Linux.Namespaces {
				types = append(types, n.Type)
			}
		}
		if got.linux != (want.Linux != nil) || !slices.Equal(got.namespaces, types) {
			t.Errorf("%q: linux %v namespaces %q, encoding/json: %v %q", data, got.linux, got.namespaces, want.Linux != nil, types)
		}
	})
}

// FuzzRecordDecoding: parseRecord agrees with encoding/json on every input.
func FuzzRecordDecoding(f *testing.F) {
	f.Add([]byte(`{"cid":"abc","sandbox_id":"sb","container_type":"container","trusted":false,"privileged":true,"runtime":"/bin/r<x>","untrusted_args":false,"reason":"r"}` + "\n"))
	for _, s := range []string{`{"CID":"a","Trusted":null,"trusted":true}`, `{"runtime":5}`, `{"trusted":"true"}`, `{"reason":"\ud800"}`, `{"cid":"a"`, `not json`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var want Record
		wantErr := json.Unmarshal(data, &want)
		got, err := parseRecord(data)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("%q: error %v, encoding/json: %v", data, err, wantErr)
		}
		if err == nil && got != want {
			t.Errorf("%q: %+v, encoding/json: %+v", data, got, want)
		}
	})
}

// FuzzRecordEncoding: a record's line is byte for byte what encoding/json writes (HTML
// escaping off), so records stay readable by anything that reads JSON.
func FuzzRecordEncoding(f *testing.F) {
	f.Add("abc", "sb", "/bin/r<x>&", "Running an untrusted but privileged container; \u2028\u2029 \"q\" \\ \b\f\n\r\t\x01\x7f", true)
	f.Add("\xff", "\xe2\x80", "é😀", "", false)
	f.Fuzz(func(t *testing.T, cid, sandbox, runtime, reason string, flag bool) {
		rec := Record{CID: cid, SandboxID: sandbox, ContainerType: "container", Trusted: flag, Privileged: !flag,
			Runtime: runtime, UntrustedArgs: flag, Reason: reason}
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(rec); err != nil {
			t.Fatal(err)
		}
		if got := rec.appendJSON(nil); !bytes.Equal(got, want.Bytes()) {
			t.Errorf("%q\nencoding/json:\n%q", got, want.Bytes())
		}
	})
}
