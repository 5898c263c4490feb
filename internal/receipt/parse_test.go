package receipt

import (
	"errors"
	"strings"
	"testing"

	"taxlink/internal/envelope"
)

// validJSON returns the JSON of a signed accepted receipt.
func validJSON(t *testing.T) string {
	r, _ := signedReceipt(t, Accepted)
	j, err := r.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return string(j)
}

// member returns the raw `"name":value` text of a member of s.
func member(t *testing.T, s, name string) string {
	i := strings.Index(s, `"`+name+`":`)
	if i < 0 {
		t.Fatalf("no member %s", name)
	}
	j := i + len(name) + 3
	depth, inStr := 0, false
	for k := j; k < len(s); k++ {
		c := s[k]
		switch {
		case inStr && c == '\\':
			k++
		case c == '"':
			inStr = !inStr
		case !inStr && (c == ',' || c == '}') && depth == 0:
			return s[i:k]
		}
	}
	t.Fatalf("unterminated member %s", name)
	return ""
}

func TestParseStrict(t *testing.T) {
	v := validJSON(t)
	replace := func(name, value string) string {
		return strings.Replace(v, member(t, v, name), `"`+name+`":`+value, 1)
	}
	drop := func(name string) string {
		m := member(t, v, name)
		if strings.HasPrefix(v, "{"+m+",") {
			return strings.Replace(v, m+",", "", 1)
		}
		return strings.Replace(v, ","+m, "", 1)
	}
	tests := []struct {
		name string
		in   string
		want string // substring of the error
	}{
		{"empty", "", "not a JSON object"},
		{"array", "[]", "not a JSON object"},
		{"null", "null", "not a JSON object"},
		{"unknown member", strings.Replace(v, "{", `{"extra":1,`, 1), `unknown member "extra"`},
		{"case-folded name", strings.Replace(v, `"kind"`, `"Kind"`, 1), `unknown member "Kind"`},
		{"duplicate member", strings.Replace(v, "{", `{"seq":1,`, 1), "field seq: duplicate member"},
		{"trailing data", v + "x", "trailing data"},
		{"second object", v + "{}", "trailing data"},
		{"truncated", v[:len(v)-1], "invalid JSON"},
		{"oversize", v + strings.Repeat(" ", MaxJSONSize), "exceeds"},
		{"kind unknown", replace("kind", `"received"`), "field kind"},
		{"kind number", replace("kind", `1`), "field kind: must be a JSON string"},
		{"kind null", replace("kind", `null`), "field kind: must be a JSON string"},
		{"envelope id lowercase", replace("envelope_id", `"01jh8z5v6q3k4m7n8p9r0s1t2v"`), "field envelope_id"},
		{"type invalid", replace("type", `"Income"`), "field type"},
		{"sender check digit", replace("sender", `"lg:011003"`), "field sender: envelope: bad participant id: lg:011003: check digit is 3, expected 2"},
		{"recipient unknown kind", replace("recipient", `"city:1"`), "field recipient"},
		{"issuer not hub", replace("issuer", `"nta:e-tax"`), "field issuer"},
		{"digest uppercase", replace("header_digest", `"`+strings.ToUpper(strings.Trim(member(t, v, "header_digest")[16:], `"`))+`"`), "field header_digest"},
		{"digest short", replace("header_digest", `"abcd"`), "field header_digest"},
		{"digest zero", replace("header_digest", `"`+strings.Repeat("0", 64)+`"`), "field header_digest: all zero"},
		{"time without ms", replace("time", `"2026-05-15T09:30:01Z"`), "field time"},
		{"time with offset", replace("time", `"2026-05-15T18:30:01.456+09:00"`), "field time"},
		{"time with us", replace("time", `"2026-05-15T09:30:01.456000Z"`), "field time"},
		{"time lowercase z", replace("time", `"2026-05-15T09:30:01.456z"`), "field time"},
		{"time invalid date", replace("time", `"2026-02-30T09:30:01.456Z"`), "field time"},
		{"seq negative", replace("seq", `-1`), "field seq"},
		{"seq float", replace("seq", `1.0`), "field seq"},
		{"seq exponent", replace("seq", `1e2`), "field seq"},
		{"seq string", replace("seq", `"42"`), "field seq"},
		{"seq null", replace("seq", `null`), "field seq"},
		{"seq overflow", replace("seq", `18446744073709551616`), "field seq"},
		{"signature empty", replace("signature", `""`), "field signature"},
		{"signature url base64", replace("signature", `"-_-_"`), "field signature"},
		{"signature unpadded", replace("signature", `"MAYCAQECAQE"`), "field signature"},
		{"signature with newline", replace("signature", `"MAYCAQEC\nAQE="`), "field signature"},
		{"signature too long", replace("signature", `"`+strings.Repeat("AAAA", 28)+`"`), "field signature: length 84"},
	}
	for _, name := range jsonFields {
		tests = append(tests, struct{ name, in, want string }{"missing " + name, drop(name), "field " + name + ": missing"})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Parse([]byte(tc.in))
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse = %+v, %v; want ErrMalformed", r, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse error %q does not contain %q", err, tc.want)
			}
		})
	}
	if _, err := Parse([]byte(replace("sender", `"lg:011003"`))); !errors.Is(err, envelope.ErrBadParticipantID) {
		t.Errorf("bad participant ID error %v does not wrap envelope.ErrBadParticipantID", err)
	}
	// Insignificant whitespace and escapes are fine: the JSON is a transport
	// form, the signature covers SignedBytes.
	spaced := strings.ReplaceAll(strings.ReplaceAll(v, ",", ",\n  "), `"kind"`, `"ki\u006ed"`)
	if _, err := Parse([]byte(" " + spaced + "\n")); err != nil {
		t.Errorf("Parse(valid receipt with whitespace and escapes) = %v", err)
	}
}
