package keystore

import (
	"fmt"
	"strconv"
	"strings"
)

// Params are the Argon2id (RFC 9106) parameters used to derive the
// file-encryption key from a passphrase. They are recorded in the file, so
// a file is always read with the parameters it was written with.
type Params struct {
	// Time is the number of passes over the memory (Argon2 t), 1..64.
	Time uint32
	// MemoryKiB is the memory size in KiB (Argon2 m), at least 8·Threads
	// and at most 1 GiB (1,048,576 KiB).
	MemoryKiB uint32
	// Threads is the degree of parallelism (Argon2 p), 1..16.
	Threads uint8
}

// Limits on Params, enforced when writing and, for files, when reading (so
// that a hostile header cannot make a reader allocate gigabytes).
const (
	maxTime      = 64
	maxMemoryKiB = 1 << 20
	maxThreads   = 16
)

// DefaultParams returns the parameters for key files in production:
// Argon2id with t=3, m=64 MiB, p=1.
//
// Justification: this is RFC 9106's second recommended option (t=3,
// m=64 MiB) with one lane instead of four. Lanes only shorten the
// defender's wall-clock time when idle cores exist; the attacker's cost per
// guess (memory × passes) is the same, and taxlink nodes may be limited to
// one CPU. It is more than three times OWASP's minimum (19 MiB, t=2). One
// derivation takes about 0.27 s on a 2-vCPU machine of the kind taxlink
// runs on, paid once per key load at start-up. Lighter parameters (for
// example Params{Time: 1, MemoryKiB: 64, Threads: 1}) are acceptable only
// in tests.
func DefaultParams() Params {
	return Params{Time: 3, MemoryKiB: 64 << 10, Threads: 1}
}

// validate reports, without any sentinel, why p is outside the limits.
func (p Params) validate() error {
	switch {
	case p.Time < 1 || p.Time > maxTime:
		return fmt.Errorf("argon2id time %d outside 1..%d", p.Time, maxTime)
	case p.Threads < 1 || p.Threads > maxThreads:
		return fmt.Errorf("argon2id threads %d outside 1..%d", p.Threads, maxThreads)
	case p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > maxMemoryKiB:
		return fmt.Errorf("argon2id memory %d KiB outside %d..%d KiB", p.MemoryKiB, 8*uint32(p.Threads), maxMemoryKiB)
	}
	return nil
}

// String renders p as the KDF-Params header value, "t=3,m=65536,p=1".
func (p Params) String() string {
	return fmt.Sprintf("t=%d,m=%d,p=%d", p.Time, p.MemoryKiB, p.Threads)
}

// parseParams parses the canonical output of Params.String; anything else
// (other order, spaces, leading zeros, signs) is refused. The result is not
// range-checked.
func parseParams(s string) (Params, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 3 {
		return Params{}, fmt.Errorf("want t=<passes>,m=<KiB>,p=<threads>")
	}
	var v [3]uint64
	for i, prefix := range []string{"t=", "m=", "p="} {
		digits, ok := strings.CutPrefix(parts[i], prefix)
		if !ok {
			return Params{}, fmt.Errorf("field %d does not start with %q", i+1, prefix)
		}
		n, err := strconv.ParseUint(digits, 10, 32)
		if err != nil || strconv.FormatUint(n, 10) != digits {
			return Params{}, fmt.Errorf("%s value is not a canonical decimal number", strings.TrimSuffix(prefix, "="))
		}
		v[i] = n
	}
	if v[2] > 255 {
		return Params{}, fmt.Errorf("p value %d does not fit in 8 bits", v[2])
	}
	return Params{Time: uint32(v[0]), MemoryKiB: uint32(v[1]), Threads: uint8(v[2])}, nil
}
