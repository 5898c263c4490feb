package export

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// MaxBody bounds every request body of the export API, in bytes.
const MaxBody = 4 << 10

// AckRequest is the body of POST [PathAck]: the Seq of the last record the
// client has taken over, which acknowledges it and every record before it.
// The body must be exactly {"seq": N} with N a non-negative integer (no
// other or repeated member, no fraction or exponent), at most [MaxBody]
// bytes, else 400 bad-request.
type AckRequest struct {
	Seq int64 `json:"seq"`
}

// errAckBody is wrapped by every refusal of parseAck.
var errAckBody = errors.New("malformed acknowledgement")

// parseAck parses an acknowledgement body strictly: exactly one JSON
// object with exactly one member "seq" (no other or repeated member)
// holding a non-negative integer that fits an int64, written without sign,
// fraction or exponent; only whitespace may follow. The error message is
// fit to send back: it never quotes the body.
func parseAck(b []byte) (int64, error) {
	if len(b) > MaxBody {
		return 0, fmt.Errorf("%w: body exceeds %d bytes", errAckBody, MaxBody)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	bad := func(what string) (int64, error) { return 0, fmt.Errorf("%w: %s", errAckBody, what) }
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return bad(`want a JSON object {"seq": N}`)
	}
	var (
		seq  int64
		seen bool
	)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return bad("invalid JSON")
		}
		key, ok := tok.(string)
		if !ok || key != "seq" {
			return bad(`the only member allowed is "seq"`)
		}
		if seen {
			return bad(`"seq" is repeated`)
		}
		seen = true
		tok, err = dec.Token()
		if err != nil {
			return bad("invalid JSON")
		}
		num, ok := tok.(json.Number)
		if !ok {
			return bad(`"seq" is not a number`)
		}
		s := string(num)
		if strings.ContainsAny(s, "-+.eE") {
			return bad(`"seq" is not a non-negative integer`)
		}
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return bad(`"seq" is out of range`)
		}
		seq = v
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return bad("invalid JSON")
	}
	if !seen {
		return bad(`"seq" is missing`)
	}
	if _, err := dec.Token(); err != io.EOF {
		return bad("trailing data after the object")
	}
	return seq, nil
}
