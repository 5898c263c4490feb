package operator

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// PINPolicy is what a PIN must look like and how long it lives. Its zero
// value stands for DefaultPINPolicy() in a Config; any other value is
// taken as is (so Expiry 0 means never and History 0 allows reuse).
type PINPolicy struct {
	MinLength int           // characters (runes); default 8, at least 4
	MaxLength int           // characters (runes); default 64, at most 1024
	Classes   int           // number of character classes required among digits, lower, upper, symbols; default 2
	Expiry    time.Duration // 0: never; default 90 days
	History   int           // how many previous PINs (the current one included) may not be reused; default 5, at most 64
}

// DefaultPINPolicy returns the default policy: 8 to 64 characters of at
// least 2 classes, expiring after 90 days, the last 5 not reusable.
func DefaultPINPolicy() PINPolicy {
	return PINPolicy{MinLength: 8, MaxLength: 64, Classes: 2, Expiry: 90 * 24 * time.Hour, History: 5}
}

// Bounds of a PINPolicy.
const (
	minPINLength  = 4
	maxPINLength  = 1024
	maxPINHistory = 64
	// maxPINInput bounds the bytes CheckPIN hashes: longer input cannot
	// be a PIN under any valid policy.
	maxPINInput = maxPINLength * utf8.UTFMax
)

// Validate reports, with an error wrapping ErrInvalid, a policy out of
// sane bounds: MinLength 4..MaxLength, MaxLength at most 1024, Classes
// 0..4, Expiry not negative, History 0..64.
func (p PINPolicy) Validate() error {
	switch {
	case p.MinLength < minPINLength:
		return invalidf("pin policy: minimum length %d is below %d", p.MinLength, minPINLength)
	case p.MaxLength < p.MinLength || p.MaxLength > maxPINLength:
		return invalidf("pin policy: maximum length %d is outside %d..%d", p.MaxLength, p.MinLength, maxPINLength)
	case p.Classes < 0 || p.Classes > 4:
		return invalidf("pin policy: classes %d is outside 0..4", p.Classes)
	case p.Expiry < 0:
		return invalidf("pin policy: negative expiry")
	case p.History < 0 || p.History > maxPINHistory:
		return invalidf("pin policy: history %d is outside 0..%d", p.History, maxPINHistory)
	}
	return nil
}

// PINError says why a PIN does not meet the policy. Reason is an English
// phrase (e.g. "at least 8 characters") that never contains the PIN.
// errors.Is(err, ErrInvalid) holds for a *PINError.
type PINError struct{ Reason string }

// Error returns "pin: " + Reason.
func (e *PINError) Error() string { return "pin: " + e.Reason }

// Unwrap returns ErrInvalid.
func (e *PINError) Unwrap() error { return ErrInvalid }

// Check returns nil if pin meets the policy and a *PINError otherwise:
// valid UTF-8 without control characters, MinLength..MaxLength characters
// (runes), and characters of at least Classes of the classes digits,
// lower-case letters, upper-case letters and symbols (anything else).
func (p PINPolicy) Check(pin string) error {
	if !utf8.ValidString(pin) {
		return &PINError{Reason: "not valid UTF-8"}
	}
	n := 0
	var digit, lower, upper, symbol bool
	for _, r := range pin {
		n++
		switch {
		case unicode.IsControl(r) || !unicode.IsGraphic(r):
			return &PINError{Reason: "must not contain control or format characters"}
		case unicode.IsDigit(r):
			digit = true
		case unicode.IsLower(r):
			lower = true
		case unicode.IsUpper(r):
			upper = true
		default:
			symbol = true
		}
	}
	if n < p.MinLength {
		return &PINError{Reason: fmt.Sprintf("at least %d characters", p.MinLength)}
	}
	if n > p.MaxLength {
		return &PINError{Reason: fmt.Sprintf("at most %d characters", p.MaxLength)}
	}
	classes := 0
	for _, b := range []bool{digit, lower, upper, symbol} {
		if b {
			classes++
		}
	}
	if classes < p.Classes {
		return &PINError{Reason: fmt.Sprintf("characters of at least %d of: digits, lower-case letters, upper-case letters, symbols", p.Classes)}
	}
	return nil
}

// ArgonParams are the Argon2id parameters new PIN hashes are made with.
// Each zero field takes its default (Time 3, MemoryKiB 64 MiB, Threads 2);
// existing hashes are verified with the parameters stored in them.
type ArgonParams struct {
	Time      uint32 // passes, 1..32
	MemoryKiB uint32 // 8*Threads..1 GiB
	Threads   uint8  // 1..255
}

// Argon2id defaults and bounds.
const (
	defaultArgonTime    = 3
	defaultArgonMemory  = 64 << 10 // KiB
	defaultArgonThreads = 2
	maxArgonTime        = 32
	maxArgonMemory      = 1 << 20 // KiB: 1 GiB
	argonSaltLen        = 16
	argonKeyLen         = 32
)

func (a ArgonParams) withDefaults() ArgonParams {
	if a.Time == 0 {
		a.Time = defaultArgonTime
	}
	if a.MemoryKiB == 0 {
		a.MemoryKiB = defaultArgonMemory
	}
	if a.Threads == 0 {
		a.Threads = defaultArgonThreads
	}
	return a
}

// validate checks bounds of parameters with defaults applied.
func (a ArgonParams) validate() error {
	switch {
	case a.Time < 1 || a.Time > maxArgonTime:
		return invalidf("argon2: time %d is outside 1..%d", a.Time, maxArgonTime)
	case a.Threads < 1:
		return invalidf("argon2: no threads")
	case a.MemoryKiB < 8*uint32(a.Threads) || a.MemoryKiB > maxArgonMemory:
		return invalidf("argon2: memory %d KiB is outside %d..%d", a.MemoryKiB, 8*uint32(a.Threads), maxArgonMemory)
	}
	return nil
}

// hashPIN returns the PHC-like string
// "$argon2id$v=19$m=<KiB>,t=<time>,p=<threads>$<salt>$<hash>" (salt and
// hash in unpadded standard base64) of pin with a new random salt.
func hashPIN(pin string, a ArgonParams) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("operator: reading random salt: %w", err)
	}
	key := argon2.IDKey([]byte(pin), salt, a.Time, a.MemoryKiB, a.Threads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, a.MemoryKiB, a.Time, a.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// verifyPIN reports, in constant time for a given stored hash, whether pin
// matches the hash made by hashPIN. A malformed stored hash is an error.
func verifyPIN(pin, stored string) (bool, error) {
	a, salt, key, err := parsePINHash(stored)
	if err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(pin), salt, a.Time, a.MemoryKiB, a.Threads, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1, nil
}

func parsePINHash(stored string) (a ArgonParams, salt, key []byte, err error) {
	bad := func(why string) error { return fmt.Errorf("operator: stored PIN hash is malformed: %s", why) }
	f := strings.Split(stored, "$")
	if len(f) != 6 || f[0] != "" || f[1] != "argon2id" || f[2] != "v="+strconv.Itoa(argon2.Version) {
		return a, nil, nil, bad("not an argon2id v=19 hash")
	}
	var m, t, p uint64
	for i, kv := range strings.Split(f[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		n, perr := strconv.ParseUint(v, 10, 32)
		if !ok || perr != nil || i > 2 || k != [...]string{"m", "t", "p"}[i] {
			return a, nil, nil, bad("parameters")
		}
		switch i {
		case 0:
			m = n
		case 1:
			t = n
		case 2:
			p = n
		}
	}
	if p > 255 {
		return a, nil, nil, bad("parameters")
	}
	a = ArgonParams{Time: uint32(t), MemoryKiB: uint32(m), Threads: uint8(p)}
	if err := a.validate(); err != nil {
		return a, nil, nil, bad("parameters out of bounds")
	}
	if salt, err = base64.RawStdEncoding.Strict().DecodeString(f[4]); err != nil || len(salt) < 8 {
		return a, nil, nil, bad("salt")
	}
	if key, err = base64.RawStdEncoding.Strict().DecodeString(f[5]); err != nil || len(key) < 16 {
		return a, nil, nil, bad("hash")
	}
	return a, salt, key, nil
}

// argon runs fn holding one of the Store's Argon2 slots, which bound the
// memory PIN hashing uses at once.
func (s *Store) argon(ctx context.Context, fn func() error) error {
	select {
	case s.argonSlot <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("operator: waiting to hash a PIN: %w", ctx.Err())
	}
	defer func() { <-s.argonSlot }()
	return fn()
}
