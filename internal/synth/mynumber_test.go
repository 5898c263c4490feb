package synth

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

// refMyNumberCheckDigit states the rule independently of the implementation:
// the weights of digits 1..11 counted from the LEFT are 6,5,4,3,2,7,6,5,4,3,2
// (i.e. Q_n = n+1 for n = 1..6 and n-5 for n = 7..11, n counted from the
// right); r = S mod 11; check = 0 if r <= 1 else 11 - r.
func refMyNumberCheckDigit(first11 string) byte {
	weights := [11]int{6, 5, 4, 3, 2, 7, 6, 5, 4, 3, 2}
	s := 0
	for i, w := range weights {
		s += w * int(first11[i]-'0')
	}
	r := s % 11
	if r <= 1 {
		return '0'
	}
	return byte('0' + 11 - r)
}

func TestMyNumberCheckDigitKnown(t *testing.T) {
	tests := []struct {
		first11 string
		want    byte
		why     string
	}{
		{"12345678901", '8', "the documented example 123456789018"},
		{"00000000000", '0', "S = 0, r = 0 must give 0"},
		{"00000000006", '0', "rightmost digit weight 2: S = 12, r = 1 must give 0"},
		{"00000000005", '1', "S = 10, r = 10 gives 11-10 = 1"},
		{"00000000001", '9', "the rightmost digit must carry weight 2"},
		{"00000100000", '4', "the 6th digit from the right must carry weight 7"},
		{"00001000000", '9', "the 7th digit from the right must carry weight 2"},
		{"10000000000", '5', "the leftmost digit must carry weight 6"},
	}
	for _, tt := range tests {
		got, err := MyNumberCheckDigit(tt.first11)
		if err != nil {
			t.Errorf("MyNumberCheckDigit(%q) error: %v", tt.first11, err)
			continue
		}
		if got != tt.want {
			t.Errorf("MyNumberCheckDigit(%q) = %c, want %c (%s)", tt.first11, got, tt.want, tt.why)
		}
	}
}

func TestMyNumberCheckDigitMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 11)
	for range 200_000 {
		for i := range buf {
			buf[i] = byte('0' + r.IntN(10))
		}
		got, err := MyNumberCheckDigit(string(buf))
		if err != nil {
			t.Fatalf("MyNumberCheckDigit(%q) error: %v", buf, err)
		}
		if want := refMyNumberCheckDigit(string(buf)); got != want {
			t.Fatalf("MyNumberCheckDigit(%q) = %c, reference rule gives %c", buf, got, want)
		}
	}
}

func TestValidMyNumber(t *testing.T) {
	const valid = "123456789018"
	if err := ValidMyNumber(valid); err != nil {
		t.Fatalf("ValidMyNumber(%q) = %v, want nil", valid, err)
	}
	if err := ValidMyNumber("000000000000"); err != nil {
		t.Errorf("ValidMyNumber(000000000000) = %v, want nil (r = 0 gives check digit 0)", err)
	}

	malformed := []string{"", "12345678901", "1234567890180", "12345678901a", "１２３４５６７８９０１８", " 23456789018", "12345678901-8"}
	for _, n := range malformed {
		err := ValidMyNumber(n)
		if err == nil {
			t.Errorf("ValidMyNumber(%q) = nil, want an error", n)
			continue
		}
		var me *MyNumberError
		if !errors.As(err, &me) {
			t.Errorf("ValidMyNumber(%q) error %v is not a *MyNumberError", n, err)
		}
	}
	for _, n := range []string{"", "1234567890", "12345678901a"} {
		if _, err := MyNumberCheckDigit(n); err == nil {
			t.Errorf("MyNumberCheckDigit(%q) accepted malformed input", n)
		}
	}

	// Every single-digit substitution and every adjacent transposition of a
	// valid number must be caught (true for this number: the weighted-sum
	// change is never a multiple of 11, and r = 3 is not one of the two
	// residues that share check digit 0).
	var mutations []string
	for i := range 12 {
		for d := byte('0'); d <= '9'; d++ {
			if d != valid[i] {
				mutations = append(mutations, valid[:i]+string(d)+valid[i+1:])
			}
		}
	}
	for i := range 11 {
		if valid[i] != valid[i+1] {
			mutations = append(mutations, valid[:i]+string(valid[i+1])+string(valid[i])+valid[i+2:])
		}
	}
	for _, m := range mutations {
		err := ValidMyNumber(m)
		if err == nil {
			t.Errorf("ValidMyNumber(%q) = nil; this mutation of %s must be invalid", m, valid)
			continue
		}
		if strings.Contains(err.Error(), m[:11]) {
			t.Errorf("ValidMyNumber error %q leaks the number", err)
		}
	}
	if err := ValidMyNumber("123456789019"); err == nil || err.Error() != "my number: check digit 9, expected 8" {
		t.Errorf("ValidMyNumber(123456789019) = %v, want \"my number: check digit 9, expected 8\"", err)
	}
}

func TestGeneratedMyNumbersValid(t *testing.T) {
	g := NewGenerator(99)
	seen := map[string]bool{}
	for i := range 2000 {
		tp := g.Taxpayer("大阪府", "大阪市")
		if err := ValidMyNumber(tp.MyNumber); err != nil {
			t.Fatalf("taxpayer %d: generated My Number is invalid: %v", i, err)
		}
		seen[tp.MyNumber] = true
	}
	if len(seen) < 1990 {
		t.Errorf("only %d distinct My Numbers in 2000 taxpayers; generator looks stuck", len(seen))
	}
}
