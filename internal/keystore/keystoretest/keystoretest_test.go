package keystoretest_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"taxlink/internal/keystore/keystoretest"
)

// helperEnv selects the scenario a re-executed test binary runs.
const helperEnv = "KEYSTORETEST_HELPER"

// runHelper re-executes this test binary running only TestHelper with
// scenario and extra environment, and returns its output and whether it
// passed.
func runHelper(t *testing.T, scenario string, env ...string) (string, bool) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelper$", "-test.v")
	cmd.Env = append(os.Environ(), append([]string{helperEnv + "=" + scenario}, env...)...)
	out, err := cmd.CombinedOutput()
	if _, isExit := err.(*exec.ExitError); err != nil && !isExit {
		t.Fatalf("run helper %s: %v", scenario, err)
	}
	return string(out), err == nil
}

// TestHelper is the body of the re-executed scenarios; it does nothing in
// a normal run.
func TestHelper(t *testing.T) {
	switch os.Getenv(helperEnv) {
	case "softhsm":
		keystoretest.SoftHSMToken(t)
		t.Log("SoftHSMToken returned")
	case "wrong-public-key":
		keystoretest.RunSigner(t, func(t *testing.T) crypto.Signer { return wrongPublic{newKey(t), newKey(t)} })
	case "garbage-signature":
		keystoretest.RunSigner(t, func(t *testing.T) crypto.Signer { return garbage{newKey(t)} })
	}
}

func TestSoftHSMTokenMissing(t *testing.T) {
	noTools := "PATH=" + t.TempDir() // no softhsm2-util on PATH
	out, ok := runHelper(t, "softhsm", noTools, keystoretest.StrictEnv+"=")
	if !ok || !strings.Contains(out, "--- SKIP") || !strings.Contains(out, "install softhsm2 (Debian package softhsm2)") {
		t.Errorf("without softhsm2-util and without %s, want a skip saying to install softhsm2; got (passed=%v):\n%s", keystoretest.StrictEnv, ok, out)
	}
	out, ok = runHelper(t, "softhsm", noTools, keystoretest.StrictEnv+"=1")
	if ok || !strings.Contains(out, "--- FAIL") || !strings.Contains(out, "install softhsm2") {
		t.Errorf("without softhsm2-util and with %s=1, want a failure saying to install softhsm2; got (passed=%v):\n%s", keystoretest.StrictEnv, ok, out)
	}
}

// TestRunSignerCatchesBrokenSigners checks that the suite fails, saying
// why, for signers that are not usable.
func TestRunSignerCatchesBrokenSigners(t *testing.T) {
	for _, tc := range []struct{ scenario, want string }{
		{"wrong-public-key", "does not verify"},
		{"garbage-signature", "does not verify"},
	} {
		out, ok := runHelper(t, tc.scenario)
		if ok || !strings.Contains(out, tc.want) {
			t.Errorf("%s: RunSigner passed=%v, want a failure mentioning %q:\n%s", tc.scenario, ok, tc.want, out)
		}
		for _, sub := range []string{"SignVerify", "CreateCertificate", "TLS13MutualHandshake", "Concurrent"} {
			if !strings.Contains(out, "--- FAIL: TestHelper/"+sub) {
				t.Errorf("%s: subtest %s did not fail:\n%s", tc.scenario, sub, out)
			}
		}
	}
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// wrongPublic signs with one key and claims another.
type wrongPublic struct{ signWith, claim *ecdsa.PrivateKey }

func (s wrongPublic) Public() crypto.PublicKey { return s.claim.Public() }
func (s wrongPublic) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	return s.signWith.Sign(r, d, o)
}

// garbage returns well-formed signatures of the wrong digest.
type garbage struct{ k *ecdsa.PrivateKey }

func (s garbage) Public() crypto.PublicKey { return s.k.Public() }
func (s garbage) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	other := make([]byte, len(d))
	copy(other, d)
	other[0] ^= 0xff
	return s.k.Sign(r, other, o)
}
