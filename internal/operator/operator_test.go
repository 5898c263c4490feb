package operator

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a controllable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// tinyArgon keeps PIN hashing fast in tests.
var tinyArgon = ArgonParams{Time: 1, MemoryKiB: 64, Threads: 1}

func openAt(t *testing.T, path string, clk *clock, pin PINPolicy) *Store {
	t.Helper()
	s, err := Open(Config{Path: path, Now: clk.Now, PIN: pin, Argon: tinyArgon})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func newStore(t *testing.T) (*Store, *clock) {
	t.Helper()
	clk := newClock()
	s := openAt(t, filepath.Join(t.TempDir(), "console.db"), clk, PINPolicy{})
	t.Cleanup(func() { s.Close() })
	return s, clk
}

var ctx = context.Background()

// activate invites id (by inviter), registers a credential and has
// approver approve it.
func activate(t *testing.T, s *Store, id string, role Role, inviter, approver string) {
	t.Helper()
	code, err := s.Invite(ctx, inviter, Operator{ID: id, Name: "Name of " + id, Role: role})
	if err != nil {
		t.Fatalf("Invite %s: %v", id, err)
	}
	if err := s.CheckEnrolmentCode(ctx, id, code); err != nil {
		t.Fatalf("CheckEnrolmentCode %s: %v", id, err)
	}
	if err := s.AddCredential(ctx, id, []byte("cred-"+id), []byte(`{"id":"`+id+`"}`)); err != nil {
		t.Fatalf("AddCredential %s: %v", id, err)
	}
	if err := s.Approve(ctx, approver, id); err != nil {
		t.Fatalf("Approve %s: %v", id, err)
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

func TestEnrolmentFlow(t *testing.T) {
	s, clk := newStore(t)
	op := Operator{ID: "taro.yamada", Name: "山田　太郎", Role: RoleDataUser,
		Grant: Grant{Tenants: []string{"lg:011002", "lg:011002", "corp:ABC-1"}, Types: []string{"income-tax-return"}}}
	code, err := s.Invite(ctx, "alice", op)
	if err != nil {
		t.Fatal(err)
	}
	if raw := strings.ReplaceAll(code, "-", ""); len(raw) != 26 {
		t.Fatalf("code %q: want 26 base32 characters", code)
	}
	_, err = s.Invite(ctx, "alice", op)
	wantErr(t, "second Invite", err, ErrExists)

	got, err := s.Get(ctx, op.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != StateInvited || got.InvitedBy != "alice" || !got.CreatedAt.Equal(clk.Now()) || got.Name != op.Name {
		t.Fatalf("after Invite: %+v", got)
	}
	if want := []string{"corp:ABC-1", "lg:011002"}; strings.Join(got.Grant.Tenants, ",") != strings.Join(want, ",") {
		t.Fatalf("tenants %v, want normalized %v", got.Grant.Tenants, want)
	}
	if err := s.CanSignIn(ctx, op.ID); !errors.Is(err, ErrState) {
		t.Fatalf("CanSignIn invited: %v", err)
	}

	// A wrong code is refused and counts as a failure; the error never
	// holds the code.
	wrong := "AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AA"
	err = s.CheckEnrolmentCode(ctx, op.ID, wrong)
	wantErr(t, "wrong code", err, ErrBadCode)
	if strings.Contains(err.Error(), wrong) {
		t.Fatalf("error %q contains the code", err)
	}
	if got, _ := s.Get(ctx, op.ID); got.Failures != 1 {
		t.Fatalf("failures after a wrong code: %d", got.Failures)
	}
	err = s.CheckEnrolmentCode(ctx, "nobody", code)
	wantErr(t, "unknown operator", err, ErrBadCode)

	// The code may be typed loosely.
	if err := s.CheckEnrolmentCode(ctx, op.ID, strings.ToLower(strings.ReplaceAll(code, "-", " "))); err != nil {
		t.Fatalf("loose code: %v", err)
	}
	err = s.AddCredential(ctx, op.ID, []byte("c1"), []byte("not json"))
	wantErr(t, "non-JSON credential", err, ErrInvalid)

	clk.Advance(time.Minute)
	if err := s.AddCredential(ctx, op.ID, []byte("c1"), []byte(`{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Get(ctx, op.ID)
	if got.State != StateRegistered {
		t.Fatalf("state after AddCredential: %s", got.State)
	}
	err = s.CheckEnrolmentCode(ctx, op.ID, code)
	wantErr(t, "consumed code", err, ErrBadCode)
	err = s.AddCredential(ctx, op.ID, []byte("c2"), []byte(`{}`))
	wantErr(t, "AddCredential while registered", err, ErrState)

	err = s.Approve(ctx, op.ID, op.ID)
	wantErr(t, "self approval", err, ErrSelfApproval)
	if err := s.Approve(ctx, "alice", op.ID); err != nil { // a data user: the inviter may approve
		t.Fatal(err)
	}
	got, _ = s.Get(ctx, op.ID)
	if got.State != StateActive || got.ApprovedBy != "alice" {
		t.Fatalf("after Approve: %+v", got)
	}
	err = s.Approve(ctx, "bob", op.ID)
	wantErr(t, "second Approve", err, ErrState)
	if err := s.CanSignIn(ctx, op.ID); err != nil {
		t.Fatal(err)
	}

	// A second credential, a sign-in with it.
	if err := s.AddCredential(ctx, op.ID, []byte("c2"), []byte(`{"n":2}`)); err != nil {
		t.Fatal(err)
	}
	err = s.AddCredential(ctx, op.ID, []byte("c2"), []byte(`{"n":2}`))
	wantErr(t, "duplicate credential", err, ErrExists)
	clk.Advance(time.Hour)
	if err := s.UpdateCredential(ctx, []byte("c2"), []byte(`{"n":3}`)); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "UpdateCredential unknown", s.UpdateCredential(ctx, []byte("zz"), []byte(`{}`)), ErrNotFound)
	creds, err := s.Credentials(ctx, op.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(creds) != 2 || string(creds[0].ID) != "c1" || string(creds[1].Data) != `{"n":3}` ||
		!creds[1].LastUsed.Equal(clk.Now()) || !creds[0].LastUsed.IsZero() {
		t.Fatalf("credentials: %+v", creds)
	}
	c, err := s.CredentialByID(ctx, []byte("c1"))
	if err != nil || c.Operator != op.ID {
		t.Fatalf("CredentialByID: %+v, %v", c, err)
	}
	if err := s.RemoveCredential(ctx, op.ID, []byte("c1")); err != nil {
		t.Fatal(err)
	}
	_, err = s.CredentialByID(ctx, []byte("c1"))
	wantErr(t, "removed credential", err, ErrNotFound)

	// Disable is final and ends sessions.
	sess, err := s.NewSession(ctx, op.ID, "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Disable(ctx, op.ID); err != nil {
		t.Fatal(err)
	}
	_, err = s.Session(ctx, sess.ID)
	wantErr(t, "session after Disable", err, ErrNotFound)
	wantErr(t, "CanSignIn disabled", s.CanSignIn(ctx, op.ID), ErrState)
	_, err = s.NewSession(ctx, op.ID, "")
	wantErr(t, "NewSession disabled", err, ErrState)
	wantErr(t, "Disable unknown", s.Disable(ctx, "nobody"), ErrNotFound)
}

func TestEnrolmentCodeExpiry(t *testing.T) {
	s, clk := newStore(t)
	code, err := s.Invite(ctx, "alice", Operator{ID: "bob", Name: "Bob", Role: RoleOperator})
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(CodeTTL + time.Second)
	wantErr(t, "expired code", s.CheckEnrolmentCode(ctx, "bob", code), ErrBadCode)
	wantErr(t, "AddCredential after expiry", s.AddCredential(ctx, "bob", []byte("c"), []byte(`{}`)), ErrBadCode)
	if op, _ := s.Get(ctx, "bob"); op.Failures != 0 {
		t.Fatalf("an expired but right code counted as a failure: %d", op.Failures)
	}

	code2, err := s.NewEnrolmentCode(ctx, "carol", "bob")
	if err != nil {
		t.Fatal(err)
	}
	wantErr(t, "old code", s.CheckEnrolmentCode(ctx, "bob", code), ErrBadCode)
	if err := s.CheckEnrolmentCode(ctx, "bob", code2); err != nil {
		t.Fatal(err)
	}
	if op, _ := s.Get(ctx, "bob"); op.InvitedBy != "carol" {
		t.Fatalf("InvitedBy after a new code: %q", op.InvitedBy)
	}
}

func TestEnrolmentLockout(t *testing.T) {
	s, _ := newStore(t)
	code, err := s.Invite(ctx, "alice", Operator{ID: "bob", Name: "Bob", Role: RoleOperator})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= DefaultLockoutAfter; i++ {
		err := s.CheckEnrolmentCode(ctx, "bob", "WRONG")
		wantErr(t, "wrong code", err, ErrBadCode)
		if locked := errors.Is(err, ErrLocked); locked != (i == DefaultLockoutAfter) {
			t.Fatalf("attempt %d: locked %v", i, locked)
		}
	}
	err = s.CheckEnrolmentCode(ctx, "bob", code)
	wantErr(t, "right code while locked", err, ErrLocked)
	if err := s.Unlock(ctx, "carol", "bob"); err != nil {
		t.Fatal(err)
	}
	if op, _ := s.Get(ctx, "bob"); op.State != StateInvited || op.Failures != 0 {
		t.Fatalf("after Unlock: %+v", op)
	}
	if err := s.CheckEnrolmentCode(ctx, "bob", code); err != nil {
		t.Fatal(err)
	}
}

func TestAdminTwoPersonApproval(t *testing.T) {
	for _, tc := range []struct {
		name     string
		role     Role
		approver string
		want     error
	}{
		{"inviter approves an admin", RoleAdmin, "alice", ErrSelfApproval},
		{"admin approves themself", RoleAdmin, "newbie", ErrSelfApproval},
		{"second admin approves an admin", RoleAdmin, "bob", nil},
		{"inviter approves an operator", RoleOperator, "alice", nil},
		{"operator approves themself", RoleOperator, "newbie", ErrSelfApproval},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newStore(t)
			code, err := s.Invite(ctx, "alice", Operator{ID: "newbie", Name: "New", Role: tc.role})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.CheckEnrolmentCode(ctx, "newbie", code); err != nil {
				t.Fatal(err)
			}
			if err := s.AddCredential(ctx, "newbie", []byte("c"), []byte(`{}`)); err != nil {
				t.Fatal(err)
			}
			err = s.Approve(ctx, tc.approver, "newbie")
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Approve by %s: %v, want %v", tc.approver, err, tc.want)
			}
			op, _ := s.Get(ctx, "newbie")
			if active := op.State == StateActive; active != (tc.want == nil) {
				t.Fatalf("state %s", op.State)
			}
		})
	}
}

func TestBootstrap(t *testing.T) {
	s, _ := newStore(t)
	enrol := func(id, by string, role Role) {
		t.Helper()
		code, err := s.Invite(ctx, by, Operator{ID: id, Name: id, Role: role})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.CheckEnrolmentCode(ctx, id, code); err != nil {
			t.Fatal(err)
		}
		if err := s.AddCredential(ctx, id, []byte(id), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	enrol("root", BootstrapInviter, RoleAdmin)
	enrol("other", "root", RoleAdmin)
	enrol("oper", BootstrapInviter, RoleOperator)
	wantErr(t, "not invited by the system", s.Bootstrap(ctx, "other"), ErrState)
	wantErr(t, "not an admin", s.Bootstrap(ctx, "oper"), ErrState)
	if err := s.Bootstrap(ctx, "root"); err != nil {
		t.Fatal(err)
	}
	if op, _ := s.Get(ctx, "root"); op.State != StateActive || op.ApprovedBy != BootstrapInviter {
		t.Fatalf("after Bootstrap: %+v", op)
	}
	enrol("second", BootstrapInviter, RoleAdmin)
	wantErr(t, "Bootstrap with an active admin", s.Bootstrap(ctx, "second"), ErrState)
}

func TestLockout(t *testing.T) {
	s, clk := newStore(t)
	activate(t, s, "dave", RoleOperator, "alice", "bob")
	var tokens []string
	for range 2 {
		ss, err := s.NewSession(ctx, "dave", "198.51.100.7")
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, ss.ID)
	}
	// A success resets the count.
	if _, err := s.RecordFailure(ctx, "dave"); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordSuccess(ctx, "dave"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 6; i++ {
		clk.Advance(time.Second)
		locked, err := s.RecordFailure(ctx, "dave")
		if err != nil {
			t.Fatal(err)
		}
		if want := i >= 5; locked != want {
			t.Fatalf("failure %d: locked %v, want %v", i, locked, want)
		}
		if i == 5 {
			op, _ := s.Get(ctx, "dave")
			if op.State != StateLocked || !op.LockedAt.Equal(clk.Now()) || op.Failures != 5 {
				t.Fatalf("after the 5th failure: %+v", op)
			}
		}
	}
	for _, tok := range tokens {
		_, err := s.Session(ctx, tok)
		wantErr(t, "session after lockout", err, ErrNotFound)
	}
	if ss, err := s.Sessions(ctx, "dave"); err != nil || len(ss) != 0 {
		t.Fatalf("Sessions after lockout: %v, %v", ss, err)
	}
	wantErr(t, "CanSignIn locked", s.CanSignIn(ctx, "dave"), ErrLocked)
	_, err := s.NewSession(ctx, "dave", "")
	wantErr(t, "NewSession locked", err, ErrLocked)
	wantErr(t, "RecordSuccess locked", s.RecordSuccess(ctx, "dave"), ErrLocked)
	_, err = s.RecordFailure(ctx, "nobody")
	wantErr(t, "RecordFailure unknown", err, ErrNotFound)

	wantErr(t, "self unlock", s.Unlock(ctx, "dave", "dave"), ErrSelfApproval)
	if err := s.Unlock(ctx, "alice", "dave"); err != nil {
		t.Fatal(err)
	}
	op, _ := s.Get(ctx, "dave")
	if op.State != StateActive || op.Failures != 0 || !op.LockedAt.IsZero() {
		t.Fatalf("after Unlock: %+v", op)
	}
	wantErr(t, "Unlock active", s.Unlock(ctx, "alice", "dave"), ErrState)
	if err := s.CanSignIn(ctx, "dave"); err != nil {
		t.Fatal(err)
	}
}

func TestPINPolicyCheck(t *testing.T) {
	p := DefaultPINPolicy()
	for _, tc := range []struct {
		pin    string
		reason string // "" if valid
	}{
		{"abc12", "at least 8 characters"},
		{"abcdefgh", "at least 2 of"},
		{"12345678", "at least 2 of"},
		{"abcdefg1", ""},
		{"ABCDEFG!", ""},
		{"パスワード12345", ""},
		{"abcd\x00efg1", "control"},
		{"abcd\tefg1", "control"},
		{"abc\u202edefg1", "control"},
		{"abcdefg\xff1", "UTF-8"},
		{strings.Repeat("a1", 32), ""},
		{strings.Repeat("a1", 32) + "x", "at most 64 characters"},
	} {
		err := p.Check(tc.pin)
		if tc.reason == "" {
			if err != nil {
				t.Errorf("Check(%q): %v", tc.pin, err)
			}
			continue
		}
		var pe *PINError
		if !errors.As(err, &pe) || !errors.Is(err, ErrInvalid) {
			t.Errorf("Check(%q): %v, want a *PINError wrapping ErrInvalid", tc.pin, err)
			continue
		}
		if !strings.Contains(pe.Reason, tc.reason) || !strings.HasPrefix(err.Error(), "pin: ") {
			t.Errorf("Check(%q): %q, want reason %q", tc.pin, err, tc.reason)
		}
		if strings.Contains(err.Error(), tc.pin) {
			t.Errorf("Check(%q): error %q contains the PIN", tc.pin, err)
		}
	}

	strict := PINPolicy{MinLength: 4, MaxLength: 8, Classes: 4}
	for pin, ok := range map[string]bool{"aB1!": true, "aB12": false, "AB1!": false} {
		if err := strict.Check(pin); (err == nil) != ok {
			t.Errorf("4 classes, Check(%q): %v", pin, err)
		}
	}
}

func TestPINPolicyValidate(t *testing.T) {
	d := DefaultPINPolicy()
	for _, tc := range []struct {
		name string
		mod  func(*PINPolicy)
		ok   bool
	}{
		{"default", func(*PINPolicy) {}, true},
		{"min below 4", func(p *PINPolicy) { p.MinLength = 3 }, false},
		{"max below min", func(p *PINPolicy) { p.MaxLength = 7 }, false},
		{"max too large", func(p *PINPolicy) { p.MaxLength = 5000 }, false},
		{"5 classes", func(p *PINPolicy) { p.Classes = 5 }, false},
		{"no classes", func(p *PINPolicy) { p.Classes = 0 }, true},
		{"negative expiry", func(p *PINPolicy) { p.Expiry = -1 }, false},
		{"never expires", func(p *PINPolicy) { p.Expiry = 0 }, true},
		{"history too long", func(p *PINPolicy) { p.History = 65 }, false},
		{"negative history", func(p *PINPolicy) { p.History = -1 }, false},
	} {
		p := d
		tc.mod(&p)
		if err := p.Validate(); (err == nil) != tc.ok || err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Validate: %v", tc.name, err)
		}
	}
	_, err := Open(Config{Path: filepath.Join(t.TempDir(), "x.db"), Now: time.Now, PIN: PINPolicy{MinLength: 1}})
	wantErr(t, "Open with a bad policy", err, ErrInvalid)
}

func TestPINHashAndReuse(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "console.db")
	policy := DefaultPINPolicy()
	policy.History = 3
	s := openAt(t, path, clk, policy)
	defer s.Close()
	activate(t, s, "erin", RoleOperator, "alice", "bob")

	wantErr(t, "CheckPIN without a PIN", s.CheckPIN(ctx, "erin", "whatever1"), ErrNoPIN)
	pins := []string{"first-pin-1", "second-pin-2", "third-pin-3"}
	for _, p := range pins {
		clk.Advance(time.Hour)
		if err := s.SetPIN(ctx, "erin", p); err != nil {
			t.Fatalf("SetPIN: %v", err)
		}
	}
	op, _ := s.Get(ctx, "erin")
	if !op.PINSetAt.Equal(clk.Now()) {
		t.Fatalf("PINSetAt %v, want %v", op.PINSetAt, clk.Now())
	}
	for _, p := range pins {
		err := s.SetPIN(ctx, "erin", p)
		wantErr(t, "reuse", err, ErrPINReused)
		if strings.Contains(err.Error(), p) {
			t.Fatalf("error %q contains the PIN", err)
		}
	}
	err := s.SetPIN(ctx, "erin", "short")
	var pe *PINError
	if !errors.As(err, &pe) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("SetPIN short: %v", err)
	}
	if err := s.SetPIN(ctx, "erin", "fourth-pin-4"); err != nil {
		t.Fatal(err)
	}
	// The first PIN is now beyond the last 3.
	if err := s.SetPIN(ctx, "erin", pins[0]); err != nil {
		t.Fatalf("SetPIN with a PIN older than the history: %v", err)
	}
	if err := s.CheckPIN(ctx, "erin", pins[0]); err != nil {
		t.Fatalf("CheckPIN: %v", err)
	}
	err = s.CheckPIN(ctx, "erin", "fourth-pin-4")
	wantErr(t, "CheckPIN with the previous PIN", err, ErrBadPIN)
	if op, _ := s.Get(ctx, "erin"); op.Failures != 0 {
		t.Fatalf("CheckPIN recorded a failure")
	}

	// The stored hashes: PHC strings that never hold the PIN.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var hash string
	if err := db.QueryRow(`SELECT pin_hash FROM operators WHERE id = 'erin'`).Scan(&hash); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(hash, "$argon2id$v=19$m=64,t=1,p=1$") || len(strings.Split(hash, "$")) != 6 {
		t.Fatalf("hash %q", hash)
	}
	var history []string
	rows, err := db.Query(`SELECT hash FROM pin_history WHERE operator = 'erin'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			t.Fatal(err)
		}
		history = append(history, h)
	}
	rows.Close()
	if len(history) != 3 {
		t.Fatalf("%d history rows, want 3", len(history))
	}
	for _, h := range append(history, hash) {
		for _, p := range append(pins, "fourth-pin-4") {
			for _, enc := range []string{p, base64.RawStdEncoding.EncodeToString([]byte(p)), fmt.Sprintf("%x", p)} {
				if strings.Contains(h, enc) {
					t.Fatalf("hash %q contains the PIN %q", h, p)
				}
			}
		}
	}
	if ok, err := verifyPIN(pins[0], hash); err != nil || !ok {
		t.Fatalf("verifyPIN: %v, %v", ok, err)
	}
	if ok, _ := verifyPIN("fourth-pin-4", hash); ok {
		t.Fatal("verifyPIN accepted another PIN")
	}
}

func TestPINExpiry(t *testing.T) {
	s, clk := newStore(t)
	activate(t, s, "frank", RoleOperator, "alice", "bob")
	const pin = "Secret-PIN-1"
	if err := s.SetPIN(ctx, "frank", pin); err != nil {
		t.Fatal(err)
	}
	clk.Advance(90 * 24 * time.Hour)
	if err := s.CheckPIN(ctx, "frank", pin); err != nil {
		t.Fatalf("CheckPIN at the expiry: %v", err)
	}
	clk.Advance(time.Nanosecond)
	wantErr(t, "CheckPIN after the expiry", s.CheckPIN(ctx, "frank", pin), ErrPINExpired)
	err := s.CheckPIN(ctx, "frank", "Wrong-PIN-1")
	wantErr(t, "wrong PIN after the expiry", err, ErrBadPIN)
	if errors.Is(err, ErrPINExpired) {
		t.Fatal("a wrong PIN reported as expired")
	}
	if err := s.SetPIN(ctx, "frank", "Renewed-PIN-2"); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckPIN(ctx, "frank", "Renewed-PIN-2"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "CheckPIN unknown", s.CheckPIN(ctx, "nobody", pin), ErrNotFound)
}

func TestCertificate(t *testing.T) {
	s, _ := newStore(t)
	activate(t, s, "gina", RoleSecurity, "alice", "bob")
	activate(t, s, "hank", RoleAuditor, "alice", "bob")
	h := strings.Repeat("AB", 32)
	if err := s.BindCertificate(ctx, "gina", h); err != nil {
		t.Fatal(err)
	}
	op, err := s.ByCertificate(ctx, strings.ToLower(h))
	if err != nil || op.ID != "gina" || op.CertSHA256 != strings.ToLower(h) {
		t.Fatalf("ByCertificate: %+v, %v", op, err)
	}
	wantErr(t, "bind a taken certificate", s.BindCertificate(ctx, "hank", h), ErrExists)
	wantErr(t, "malformed hash", s.BindCertificate(ctx, "hank", "abc"), ErrInvalid)
	_, err = s.ByCertificate(ctx, strings.Repeat("0", 64))
	wantErr(t, "unknown certificate", err, ErrNotFound)
	if err := s.BindCertificate(ctx, "gina", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.BindCertificate(ctx, "hank", h); err != nil {
		t.Fatalf("bind after unbinding: %v", err)
	}
}

func TestSessions(t *testing.T) {
	s, clk := newStore(t)
	activate(t, s, "ivan", RoleOperator, "alice", "bob")
	activate(t, s, "judy", RoleOperator, "alice", "bob")
	a, err := s.NewSession(ctx, "ivan", "203.0.113.5:4431")
	if err != nil {
		t.Fatal(err)
	}
	if len(a.ID) != 43 || len(a.CSRF) != 43 || a.ID == a.CSRF {
		t.Fatalf("tokens %q %q", a.ID, a.CSRF)
	}
	if _, err := base64.RawURLEncoding.DecodeString(a.ID); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	b, err := s.NewSession(ctx, "ivan", "203.0.113.6")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.NewSession(ctx, "judy", ""); err != nil {
		t.Fatal(err)
	}
	_, err = s.NewSession(ctx, "ivan", "bad\naddress")
	wantErr(t, "control character in from", err, ErrInvalid)

	got, err := s.Session(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got != a {
		t.Fatalf("Session: %+v, want %+v", got, a)
	}
	clk.Advance(time.Minute)
	if err := s.Touch(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Session(ctx, a.ID)
	if !got.LastSeen.Equal(clk.Now()) || !got.AuthAt.Equal(a.AuthAt) {
		t.Fatalf("after Touch: %+v", got)
	}
	clk.Advance(time.Minute)
	if err := s.Reauthenticated(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Session(ctx, a.ID)
	if !got.LastSeen.Equal(clk.Now()) || !got.AuthAt.Equal(clk.Now()) || !got.Created.Equal(a.Created) {
		t.Fatalf("after Reauthenticated: %+v", got)
	}

	for _, tok := range []string{"", "short", strings.Repeat("A", 43), a.ID + "x", b.ID[:42] + "!"} {
		_, err := s.Session(ctx, tok)
		wantErr(t, "bad token", err, ErrNotFound)
		if tok != "" && strings.Contains(err.Error(), tok) {
			t.Fatalf("error %q contains the token", err)
		}
		wantErr(t, "Touch bad token", s.Touch(ctx, tok), ErrNotFound)
	}

	list, err := s.Sessions(ctx, "ivan")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != "" || list[1].ID != "" || list[0].From != a.From || list[1].CSRF != b.CSRF {
		t.Fatalf("Sessions: %+v", list)
	}

	if err := s.EndSession(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "EndSession twice", s.EndSession(ctx, b.ID), ErrNotFound)
	if _, err := s.NewSession(ctx, "ivan", ""); err != nil {
		t.Fatal(err)
	}
	n, err := s.EndAllSessions(ctx, "ivan")
	if err != nil || n != 2 {
		t.Fatalf("EndAllSessions: %d, %v", n, err)
	}
	_, err = s.Session(ctx, a.ID)
	wantErr(t, "session after EndAllSessions", err, ErrNotFound)
	if list, _ := s.Sessions(ctx, "judy"); len(list) != 1 {
		t.Fatalf("judy lost her session: %+v", list)
	}
	_, err = s.EndAllSessions(ctx, "nobody")
	wantErr(t, "EndAllSessions unknown", err, ErrNotFound)

	// Idle and absolute expiry.
	c, _ := s.NewSession(ctx, "ivan", "")
	clk.Advance(10 * time.Minute)
	if err := s.Touch(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	n, err = s.ExpireSessions(ctx, 5*time.Minute, 0) // judy's is idle
	if err != nil || n != 1 {
		t.Fatalf("ExpireSessions idle: %d, %v", n, err)
	}
	n, err = s.ExpireSessions(ctx, 0, 5*time.Minute)
	if err != nil || n != 1 {
		t.Fatalf("ExpireSessions absolute: %d, %v", n, err)
	}
}

func TestSessionTokenNotStored(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "console.db")
	s := openAt(t, path, clk, PINPolicy{})
	defer s.Close()
	activate(t, s, "kim", RoleOperator, "alice", "bob")
	ss, err := s.NewSession(ctx, "kim", "")
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var hash []byte
	if err := db.QueryRow(`SELECT hash FROM sessions`).Scan(&hash); err != nil {
		t.Fatal(err)
	}
	if len(hash) != 32 || strings.Contains(string(hash), ss.ID) {
		t.Fatalf("stored session key %x", hash)
	}
}

func TestDecide(t *testing.T) {
	s, clk := newStore(t)
	req := Approval{Kind: "records.erase", Object: "lg:011002/2026", Params: []byte(`{"before":"2020"}`),
		Summary: "Erase records before 2020\nof lg:011002", RequestedBy: "alice"}
	a, err := s.Request(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if a.State != ApprovalPending || len(a.ID) != 26 || !a.RequestedAt.Equal(clk.Now()) {
		t.Fatalf("Request: %+v", a)
	}
	calls := 0
	exec := func(_ context.Context, a Approval) (string, error) {
		calls++
		if a.State != ApprovalExecuting || a.DecidedBy != "bob" {
			t.Errorf("exec got %+v", a)
		}
		return "erased 12 records", nil
	}
	_, err = s.Decide(ctx, a.ID, "alice", true, exec)
	wantErr(t, "self approval", err, ErrSelfApproval)
	clk.Advance(time.Hour)
	got, err := s.Decide(ctx, a.ID, "bob", true, exec)
	if err != nil {
		t.Fatal(err)
	}
	if calls != 1 || got.State != ApprovalExecuted || got.Result != "erased 12 records" || got.DecidedBy != "bob" ||
		!got.DecidedAt.Equal(clk.Now()) {
		t.Fatalf("Decide: %+v, %d calls", got, calls)
	}
	_, err = s.Decide(ctx, a.ID, "carol", true, exec)
	wantErr(t, "Decide twice", err, ErrState)
	if calls != 1 {
		t.Fatalf("exec called %d times", calls)
	}
	stored, err := s.Approval(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.State != ApprovalExecuted || string(stored.Params) != string(req.Params) || stored.Summary != req.Summary {
		t.Fatalf("Approval: %+v", stored)
	}

	// A failing executor.
	clk.Advance(time.Second)
	b, _ := s.Request(ctx, req)
	got, err = s.Decide(ctx, b.ID, "bob", true, func(context.Context, Approval) (string, error) {
		return "", errors.New("participant \x1b[31mbusy")
	})
	if err != nil || got.State != ApprovalFailed || got.Result != "participant  [31mbusy" {
		t.Fatalf("failing exec: %+v, %v", got, err)
	}

	// Rejection.
	clk.Advance(time.Second)
	c, _ := s.Request(ctx, req)
	got, err = s.Decide(ctx, c.ID, "bob", false, nil)
	if err != nil || got.State != ApprovalRejected || got.DecidedBy != "bob" {
		t.Fatalf("reject: %+v, %v", got, err)
	}

	// Expiry after 7 days.
	clk.Advance(time.Second)
	d, _ := s.Request(ctx, req)
	clk.Advance(ApprovalTTL)
	if got, _ := s.Approval(ctx, d.ID); got.State != ApprovalPending {
		t.Fatalf("at 7 days: %s", got.State)
	}
	clk.Advance(time.Second)
	if got, _ := s.Approval(ctx, d.ID); got.State != ApprovalExpired || !got.DecidedAt.Equal(d.RequestedAt.Add(ApprovalTTL)) {
		t.Fatalf("after 7 days: %+v", got)
	}
	if l, _ := s.Approvals(ctx, ApprovalPending, 0); len(l) != 0 {
		t.Fatalf("pending after expiry: %+v", l)
	}
	if l, _ := s.Approvals(ctx, ApprovalExpired, 0); len(l) != 1 || l[0].ID != d.ID {
		t.Fatalf("expired: %+v", l)
	}
	_, err = s.Decide(ctx, d.ID, "bob", true, exec)
	wantErr(t, "Decide expired", err, ErrState)
	if calls != 1 {
		t.Fatal("exec called on an expired approval")
	}
	if l, _ := s.Approvals(ctx, ApprovalExpired, 0); len(l) != 1 || l[0].ID != d.ID {
		t.Fatalf("expired after Decide: %+v", l)
	}

	all, err := s.Approvals(ctx, "", 0)
	if err != nil || len(all) != 4 || all[0].ID != d.ID || all[3].ID != a.ID {
		t.Fatalf("Approvals newest first: %+v, %v", all, err)
	}
	if l, _ := s.Approvals(ctx, "", 2); len(l) != 2 {
		t.Fatalf("limit 2: %d", len(l))
	}
	_, err = s.Approvals(ctx, "bogus", 0)
	wantErr(t, "bogus state", err, ErrInvalid)
	_, err = s.Approval(ctx, "not-a-ulid")
	wantErr(t, "malformed ID", err, ErrInvalid)
	_, err = s.Approval(ctx, "01ARZ3NDEKTSV4RRFFQ69G5FAV")
	wantErr(t, "unknown ID", err, ErrNotFound)
}

func TestRequestValidation(t *testing.T) {
	s, _ := newStore(t)
	ok := Approval{Kind: "participant.suspend", Object: "lg:011002", Summary: "s", RequestedBy: "alice"}
	for _, tc := range []struct {
		name string
		mod  func(*Approval)
	}{
		{"bad kind", func(a *Approval) { a.Kind = "Records.Erase" }},
		{"empty kind", func(a *Approval) { a.Kind = "" }},
		{"empty segment", func(a *Approval) { a.Kind = "records..erase" }},
		{"empty object", func(a *Approval) { a.Object = "" }},
		{"long object", func(a *Approval) { a.Object = strings.Repeat("x", 257) }},
		{"params not JSON", func(a *Approval) { a.Params = []byte("{") }},
		{"params too long", func(a *Approval) { a.Params = []byte(`"` + strings.Repeat("x", 64<<10) + `"`) }},
		{"long summary", func(a *Approval) { a.Summary = strings.Repeat("x", 513) }},
		{"control in summary", func(a *Approval) { a.Summary = "a\x07b" }},
		{"bad requester", func(a *Approval) { a.RequestedBy = "Alice" }},
	} {
		a := ok
		tc.mod(&a)
		_, err := s.Request(ctx, a)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	if _, err := s.Request(ctx, ok); err != nil {
		t.Fatal(err)
	}
}

func TestDecideConcurrent(t *testing.T) {
	s, _ := newStore(t)
	a, err := s.Request(ctx, Approval{Kind: "directory.publish", Object: "directory", RequestedBy: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	var wins, refusals atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := s.Decide(ctx, a.ID, fmt.Sprintf("sec%d", i), true, func(context.Context, Approval) (string, error) {
				calls.Add(1)
				time.Sleep(10 * time.Millisecond)
				return "published", nil
			})
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, ErrState):
				refusals.Add(1)
			default:
				t.Errorf("Decide: %v", err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if calls.Load() != 1 || wins.Load() != 1 || refusals.Load() != 7 {
		t.Fatalf("%d exec calls, %d wins, %d refusals", calls.Load(), wins.Load(), refusals.Load())
	}
	got, _ := s.Approval(ctx, a.ID)
	if got.State != ApprovalExecuted || got.Result != "published" {
		t.Fatalf("final: %+v", got)
	}
}

func TestDecidePanickingExecutor(t *testing.T) {
	s, _ := newStore(t)
	a, err := s.Request(ctx, Approval{Kind: "directory.publish", Object: "directory", RequestedBy: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the panic did not go on")
			}
		}()
		s.Decide(ctx, a.ID, "bob", true, func(context.Context, Approval) (string, error) { panic("boom") })
	}()
	got, _ := s.Approval(ctx, a.ID)
	if got.State != ApprovalFailed {
		t.Fatalf("after a panic: %+v", got)
	}
}

func TestAlerts(t *testing.T) {
	s, clk := newStore(t)
	first, err := s.Alert(ctx, Alert{Kind: "auth.failure", Severity: SeverityWarning, Subject: "dave", Detail: "from 192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	if first.ID == 0 || !first.Time.Equal(clk.Now()) {
		t.Fatalf("Alert: %+v", first)
	}
	clk.Advance(time.Second)
	second, err := s.Alert(ctx, Alert{Kind: "auth.lockout", Severity: SeverityCritical, Subject: "dave"})
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Alert{
		{Kind: "auth.failure", Severity: "panic"},
		{Kind: "Auth", Severity: SeverityInfo},
		{Kind: "auth.failure", Severity: SeverityInfo, Subject: "a\nb"},
	} {
		_, err := s.Alert(ctx, bad)
		wantErr(t, "bad alert", err, ErrInvalid)
	}
	l, err := s.Alerts(ctx, 0, false)
	if err != nil || len(l) != 2 || l[0].ID != second.ID || l[1].ID != first.ID {
		t.Fatalf("Alerts: %+v, %v", l, err)
	}
	clk.Advance(time.Second)
	if err := s.AckAlert(ctx, second.ID, "gina"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "ack twice", s.AckAlert(ctx, second.ID, "gina"), ErrState)
	wantErr(t, "ack unknown", s.AckAlert(ctx, 999, "gina"), ErrNotFound)
	l, _ = s.Alerts(ctx, 0, true)
	if len(l) != 1 || l[0].ID != first.ID {
		t.Fatalf("unacked: %+v", l)
	}
	l, _ = s.Alerts(ctx, 1, false)
	if len(l) != 1 || l[0].AckedBy != "gina" || !l[0].AckedAt.Equal(clk.Now()) {
		t.Fatalf("acked: %+v", l)
	}
	_, err = s.Alerts(ctx, -1, false)
	wantErr(t, "negative limit", err, ErrInvalid)
}

func TestInviteValidation(t *testing.T) {
	s, _ := newStore(t)
	good := Operator{ID: "ok.id_1-x", Name: "Ok", Role: RoleDataUser, Grant: Grant{Tenants: []string{"*"}, Types: []string{"*"}}}
	for _, tc := range []struct {
		name string
		by   string
		mod  func(*Operator)
	}{
		{"short ID", "alice", func(o *Operator) { o.ID = "a" }},
		{"long ID", "alice", func(o *Operator) { o.ID = "a" + strings.Repeat("b", 32) }},
		{"upper-case ID", "alice", func(o *Operator) { o.ID = "Alice" }},
		{"ID starting with a digit", "alice", func(o *Operator) { o.ID = "1abc" }},
		{"empty name", "alice", func(o *Operator) { o.Name = "" }},
		{"blank name", "alice", func(o *Operator) { o.Name = "   " }},
		{"long name", "alice", func(o *Operator) { o.Name = strings.Repeat("名", 65) }},
		{"control in name", "alice", func(o *Operator) { o.Name = "a\x00b" }},
		{"bidi override in name", "alice", func(o *Operator) { o.Name = "a\u202eb" }},
		{"unknown role", "alice", func(o *Operator) { o.Role = "root" }},
		{"star with others", "alice", func(o *Operator) { o.Grant.Tenants = []string{"*", "lg:011002"} }},
		{"bad tenant", "alice", func(o *Operator) { o.Grant.Tenants = []string{"LG:011002"} }},
		{"tenant without prefix", "alice", func(o *Operator) { o.Grant.Tenants = []string{":011002"} }},
		{"long tenant", "alice", func(o *Operator) { o.Grant.Tenants = []string{"lg:" + strings.Repeat("1", 65)} }},
		{"bad type", "alice", func(o *Operator) { o.Grant.Types = []string{"Income"} }},
		{"bad inviter", "", func(*Operator) {}},
	} {
		op := good
		tc.mod(&op)
		if _, err := s.Invite(ctx, tc.by, op); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	if _, err := s.Invite(ctx, "alice", good); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "SetGrant bad role", s.SetGrant(ctx, good.ID, "boss", Grant{}), ErrInvalid)
	wantErr(t, "SetGrant unknown", s.SetGrant(ctx, "nobody", RoleAuditor, Grant{}), ErrNotFound)
	if err := s.SetGrant(ctx, good.ID, RoleAuditor, Grant{Types: []string{"b-type", "a-type"}}); err != nil {
		t.Fatal(err)
	}
	op, _ := s.Get(ctx, good.ID)
	if op.Role != RoleAuditor || op.Grant.Tenants != nil || strings.Join(op.Grant.Types, ",") != "a-type,b-type" {
		t.Fatalf("after SetGrant: %+v", op)
	}
	_, err := s.Get(ctx, "BAD")
	wantErr(t, "Get malformed", err, ErrInvalid)
	_, err = s.Get(ctx, "nobody")
	wantErr(t, "Get unknown", err, ErrNotFound)
}

func TestGrant(t *testing.T) {
	all := Grant{Tenants: []string{"*"}, Types: []string{"*"}}
	some := Grant{Tenants: []string{"lg:011002"}, Types: []string{"income-tax-return"}}
	for _, tc := range []struct {
		g      Grant
		tenant string
		typ    string
		want   bool
	}{
		{all, "lg:011002", "income-tax-return", true},
		{all, "", "", false},
		{some, "lg:011002", "income-tax-return", true},
		{some, "lg:131016", "income-tax-return", false},
		{some, "lg:011002", "resident-tax", false},
		{some, "*", "*", false},
		{Grant{}, "lg:011002", "income-tax-return", false},
	} {
		if got := tc.g.AllowsTenant(tc.tenant) && tc.g.AllowsType(tc.typ); got != tc.want {
			t.Errorf("%+v allows %q/%q: %v, want %v", tc.g, tc.tenant, tc.typ, got, tc.want)
		}
	}
	if r := Roles(); len(r) != 5 || r[0] != RoleAdmin || r[4] != RoleDataUser {
		t.Fatalf("Roles: %v", r)
	}
	for _, r := range Roles() {
		if !r.Valid() {
			t.Errorf("%s not valid", r)
		}
	}
	if Role("root").Valid() {
		t.Error("root is valid")
	}
}

func TestDurability(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "console.db")
	s := openAt(t, path, clk, PINPolicy{})
	activate(t, s, "lena", RoleSecurity, "alice", "bob")
	if err := s.SetPIN(ctx, "lena", "Durable-PIN-1"); err != nil {
		t.Fatal(err)
	}
	sess, err := s.NewSession(ctx, "lena", "192.0.2.9")
	if err != nil {
		t.Fatal(err)
	}
	ap, err := s.Request(ctx, Approval{Kind: "participant.suspend", Object: "lg:011002", RequestedBy: "lena"})
	if err != nil {
		t.Fatal(err)
	}
	al, err := s.Alert(ctx, Alert{Kind: "auth.lockout", Severity: SeverityCritical, Subject: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "Close twice", s.Close(), ErrClosed)
	_, err = s.Get(ctx, "lena")
	wantErr(t, "Get after Close", err, ErrClosed)

	s = openAt(t, path, clk, PINPolicy{})
	defer s.Close()
	if v, err := s.SchemaVersion(ctx); err != nil || v != len(migrations()) {
		t.Fatalf("SchemaVersion: %d, %v", v, err)
	}
	op, err := s.Get(ctx, "lena")
	if err != nil || op.State != StateActive || op.Role != RoleSecurity || op.ApprovedBy != "bob" {
		t.Fatalf("operator after reopening: %+v, %v", op, err)
	}
	if err := s.CheckPIN(ctx, "lena", "Durable-PIN-1"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Session(ctx, sess.ID); err != nil || got != sess {
		t.Fatalf("session after reopening: %+v, %v", got, err)
	}
	if got, err := s.Approval(ctx, ap.ID); err != nil || got.State != ApprovalPending || got.RequestedBy != "lena" {
		t.Fatalf("approval after reopening: %+v, %v", got, err)
	}
	if l, err := s.Alerts(ctx, 0, true); err != nil || len(l) != 1 || l[0].ID != al.ID {
		t.Fatalf("alerts after reopening: %+v, %v", l, err)
	}
	if creds, err := s.Credentials(ctx, "lena"); err != nil || len(creds) != 1 {
		t.Fatalf("credentials after reopening: %+v, %v", creds, err)
	}
}

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	_, err := Open(Config{Path: filepath.Join(dir, "a.db")})
	wantErr(t, "no clock", err, ErrInvalid)
	_, err = Open(Config{Now: time.Now})
	wantErr(t, "no path", err, ErrInvalid)
	_, err = Open(Config{Path: filepath.Join(dir, "b.db"), Now: time.Now, LockoutAfter: -1})
	wantErr(t, "bad lockout", err, ErrInvalid)
	_, err = Open(Config{Path: filepath.Join(dir, "c.db"), Now: time.Now, Argon: ArgonParams{Time: 1, MemoryKiB: 4, Threads: 1}})
	wantErr(t, "tiny argon memory", err, ErrInvalid)

	// A SQLite file of something else is refused and left alone.
	foreign := filepath.Join(dir, "foreign.db")
	db, err := sql.Open("sqlite", foreign)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE t (x INTEGER)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = Open(Config{Path: foreign, Now: time.Now})
	wantErr(t, "foreign database", err, ErrForeign)

	// A newer schema is refused.
	clk := newClock()
	path := filepath.Join(dir, "newer.db")
	s := openAt(t, path, clk, PINPolicy{})
	s.Close()
	db, err = sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE schema_version SET version = 99`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = Open(Config{Path: path, Now: clk.Now})
	wantErr(t, "newer schema", err, ErrSchemaTooNew)
}

func TestLockoutAfterConfig(t *testing.T) {
	clk := newClock()
	s, err := Open(Config{Path: filepath.Join(t.TempDir(), "x.db"), Now: clk.Now, LockoutAfter: 2, Argon: tinyArgon})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	activate(t, s, "mia", RoleOperator, "alice", "bob")
	if locked, _ := s.RecordFailure(ctx, "mia"); locked {
		t.Fatal("locked after 1")
	}
	if locked, _ := s.RecordFailure(ctx, "mia"); !locked {
		t.Fatal("not locked after 2")
	}
}

func TestRegisterCertificate(t *testing.T) {
	ctx := context.Background()
	st, _ := newStore(t)
	code, err := st.Invite(ctx, "root", Operator{ID: "card", Name: "Card User", Role: RoleOperator, Grant: Grant{Tenants: []string{"*"}, Types: []string{"*"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CheckEnrolmentCode(ctx, "card", code); err != nil {
		t.Fatal(err)
	}
	hash := strings.Repeat("ab", 32)
	if err := st.RegisterCertificate(ctx, "card", hash); err != nil {
		t.Fatalf("RegisterCertificate: %v", err)
	}
	op, err := st.Get(ctx, "card")
	if err != nil || op.State != StateRegistered || op.CertSHA256 != hash {
		t.Fatalf("after registration: %+v, %v", op, err)
	}
	if err := st.CheckEnrolmentCode(ctx, "card", code); err == nil {
		t.Error("the enrolment code still works after registration")
	}
	if err := st.RegisterCertificate(ctx, "card", hash); !errors.Is(err, ErrState) {
		t.Errorf("second registration: %v, want ErrState", err)
	}
	if got, err := st.ByCertificate(ctx, hash); err != nil || got.ID != "card" {
		t.Errorf("ByCertificate: %+v, %v", got, err)
	}
}
