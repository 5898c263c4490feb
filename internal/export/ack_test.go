package export

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestParseAck(t *testing.T) {
	for _, tc := range []struct {
		body string
		want int64
		ok   bool
	}{
		{`{"seq":7}`, 7, true},
		{` { "seq" : 0 } ` + "\n", 0, true},
		{`{"seq":9223372036854775807}`, 1<<63 - 1, true},
		{`{"seq":9223372036854775808}`, 0, false},
		{`{"seq":-1}`, 0, false},
		{`{"seq":-0}`, 0, false},
		{`{"seq":1.0}`, 0, false},
		{`{"seq":1e3}`, 0, false},
		{`{"seq":"7"}`, 0, false},
		{`{"seq":null}`, 0, false},
		{`{"seq":[7]}`, 0, false},
		{`{"seq":{}}`, 0, false},
		{`{"seq":true}`, 0, false},
		{`{"seq":01}`, 0, false},
		{`{}`, 0, false},
		{`{"Seq":7}`, 0, false},
		{`{"seq":7,"seq":8}`, 0, false},
		{`{"seq":7,"other":1}`, 0, false},
		{`{"seq":7}{"seq":8}`, 0, false},
		{`{"seq":7} x`, 0, false},
		{`{"seq":7`, 0, false},
		{`[7]`, 0, false},
		{`7`, 0, false},
		{`null`, 0, false},
		{``, 0, false},
		{"{\"seq\":7}" + strings.Repeat(" ", MaxBody), 0, false},
	} {
		t.Run(tc.body[:min(len(tc.body), 30)], func(t *testing.T) {
			got, err := parseAck([]byte(tc.body))
			if (err == nil) != tc.ok || got != tc.want {
				t.Fatalf("parseAck(%q) = %d, %v; want %d, ok=%v", tc.body, got, err, tc.want, tc.ok)
			}
			if err != nil && strings.Contains(err.Error(), tc.body) && tc.body != "" {
				t.Fatalf("error %q quotes the body", err)
			}
		})
	}
}

// FuzzParseAck checks that the parser never panics, that whatever it
// accepts is a non-negative Seq that encoding/json reads the same way, and
// that the canonical encoding of that Seq parses back to it. Seeds live in
// testdata/fuzz/FuzzParseAck.
func FuzzParseAck(f *testing.F) {
	f.Add([]byte(`{"seq":1}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		seq, err := parseAck(body)
		if err != nil {
			if seq != 0 {
				t.Fatalf("refused body returned seq %d", seq)
			}
			return
		}
		if seq < 0 {
			t.Fatalf("accepted negative seq %d", seq)
		}
		var std AckRequest
		if err := json.Unmarshal(body, &std); err != nil || std.Seq != seq {
			t.Fatalf("parseAck(%q) = %d but encoding/json says %d, %v", body, seq, std.Seq, err)
		}
		again, err := parseAck(fmt.Appendf(nil, `{"seq":%d}`, seq))
		if err != nil || again != seq {
			t.Fatalf("canonical form of %d parses as %d, %v", seq, again, err)
		}
	})
}
