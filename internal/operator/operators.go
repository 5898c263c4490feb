package operator

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

const opCols = `id, name, role, tenants, types, state, locked_from, invited_by, approved_by,
	created_ns, failures, locked_ns, cert_sha256, pin_hash, pin_set_ns, code_hash, code_ns`

// opRow is an operators row: the Operator and the columns it does not
// show.
type opRow struct {
	Operator
	lockedFrom State
	pinHash    string
	codeHash   []byte
	codeNS     int64
}

type scanner interface{ Scan(dest ...any) error }

func scanOp(sc scanner) (opRow, error) {
	var (
		r                             opRow
		tenants, types                string
		createdNS, lockedNS, pinSetNS int64
		role, state, lockedFrom       string
		codeHash                      []byte
	)
	if err := sc.Scan(&r.ID, &r.Name, &role, &tenants, &types, &state, &lockedFrom, &r.InvitedBy, &r.ApprovedBy,
		&createdNS, &r.Failures, &lockedNS, &r.CertSHA256, &r.pinHash, &pinSetNS, &codeHash, &r.codeNS); err != nil {
		return opRow{}, err
	}
	r.Role, r.State, r.lockedFrom, r.codeHash = Role(role), State(state), State(lockedFrom), codeHash
	r.CreatedAt, r.LockedAt, r.PINSetAt = fromNS(createdNS), fromNS(lockedNS), fromNS(pinSetNS)
	if err := json.Unmarshal([]byte(tenants), &r.Grant.Tenants); err != nil {
		return opRow{}, fmt.Errorf("decoding the tenants of %q: %w", r.ID, err)
	}
	if err := json.Unmarshal([]byte(types), &r.Grant.Types); err != nil {
		return opRow{}, fmt.Errorf("decoding the types of %q: %w", r.ID, err)
	}
	if len(r.Grant.Tenants) == 0 {
		r.Grant.Tenants = nil
	}
	if len(r.Grant.Types) == 0 {
		r.Grant.Types = nil
	}
	return r, nil
}

// getOp reads the operator id; ErrNotFound if there is none.
func (s *Store) getOp(ctx context.Context, q querier, op, id string) (opRow, error) {
	r, err := scanOp(q.QueryRowContext(ctx, `SELECT `+opCols+` FROM operators WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return opRow{}, fmt.Errorf("operator: %s: %w: operator %q", op, ErrNotFound, id)
	}
	if err != nil {
		return opRow{}, s.fail(op, err)
	}
	return r, nil
}

func jsonList(l []string) string {
	if len(l) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(l) // []string always marshals
	return string(b)
}

// newCode returns a new enrolment code (16 random bytes in unpadded
// base32, in groups of four separated by hyphens) and its hash.
func newCode() (code string, hash []byte, err error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("operator: reading a random enrolment code: %w", err)
	}
	raw := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)
	var sb strings.Builder
	for i := 0; i < len(raw); i += 4 {
		if i > 0 {
			sb.WriteByte('-')
		}
		sb.WriteString(raw[i:min(i+4, len(raw))])
	}
	return sb.String(), codeHash(raw), nil
}

// maxCodeInput bounds the length of a code given to CheckEnrolmentCode.
const maxCodeInput = 128

// codeHash returns the SHA-256 of a code with hyphens and spaces removed
// and letters in upper case, so that the code may be typed loosely.
func codeHash(code string) []byte {
	norm := strings.Map(func(r rune) rune {
		switch {
		case r == '-' || r == ' ':
			return -1
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		}
		return r
	}, code)
	h := sha256.Sum256([]byte(norm))
	return h[:]
}

// Invite creates the operator op in StateInvited, with InvitedBy by and
// CreatedAt now, and returns its one-time enrolment code: 16 random bytes
// in unpadded base32, grouped by four with hyphens (hyphens, spaces and
// letter case are ignored when it is checked). Only the code's SHA-256 is
// stored; it expires CodeTTL after Invite. Only op's ID, Name, Role and
// Grant are used (the grant is stored normalized, see Grant); the other
// fields are set by the store. Invite fails with ErrInvalid for a
// malformed by, ID, Name, Role or Grant, and with ErrExists if the ID is
// taken.
func (s *Store) Invite(ctx context.Context, by string, op Operator) (code string, err error) {
	if err := checkID("inviter", by); err != nil {
		return "", err
	}
	if err := checkID("operator ID", op.ID); err != nil {
		return "", err
	}
	if err := checkName(op.Name); err != nil {
		return "", err
	}
	if !op.Role.Valid() {
		return "", invalidf("unknown role %q", clip(string(op.Role)))
	}
	g, err := op.Grant.normalize()
	if err != nil {
		return "", err
	}
	code, hash, err := newCode()
	if err != nil {
		return "", err
	}
	now := toNS(s.now())
	err = s.write(ctx, "invite", func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM operators WHERE id = ?`, op.ID).Scan(&n); err != nil {
			return s.fail("invite", err)
		}
		if n != 0 {
			return fmt.Errorf("operator: invite: %w: operator %q", ErrExists, op.ID)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO operators
			(id, name, role, tenants, types, state, invited_by, created_ns, code_hash, code_ns)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			op.ID, op.Name, string(op.Role), jsonList(g.Tenants), jsonList(g.Types), string(StateInvited), by, now, hash, now)
		if err != nil {
			return s.fail("invite", err)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return code, nil
}

// NewEnrolmentCode replaces the enrolment code of the invited operator id
// (for example after the first one expired) and returns the new code,
// valid CodeTTL from now. The old code stops working. Since by now knows
// the code, by becomes the operator's InvitedBy (so that, for an
// administrator, by may not approve it). ErrState unless the operator is
// StateInvited; ErrNotFound; ErrInvalid for malformed IDs.
func (s *Store) NewEnrolmentCode(ctx context.Context, by, id string) (string, error) {
	if err := checkID("inviter", by); err != nil {
		return "", err
	}
	if err := checkID("operator ID", id); err != nil {
		return "", err
	}
	code, hash, err := newCode()
	if err != nil {
		return "", err
	}
	now := toNS(s.now())
	err = s.write(ctx, "new enrolment code", func(tx *sql.Tx) error {
		r, err := s.getOp(ctx, tx, "new enrolment code", id)
		if err != nil {
			return err
		}
		if r.State != StateInvited {
			return fmt.Errorf("operator: new enrolment code: %w: operator %q is %s", ErrState, id, r.State)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE operators SET code_hash = ?, code_ns = ?, invited_by = ? WHERE id = ?`,
			hash, now, by, id); err != nil {
			return s.fail("new enrolment code", err)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return code, nil
}

// CheckEnrolmentCode checks the enrolment code of the operator id in
// constant time. It fails with ErrBadCode if the code is wrong, expired
// (CodeTTL after it was issued) or used, or if the operator does not exist
// or is not StateInvited (additionally wrapping ErrLocked if it is
// locked). A wrong code for an invited operator counts as a failed sign-in
// and is recorded here, with RecordFailure's semantics (it may lock the
// operator, then the error also wraps ErrLocked); the caller must not
// record it again. ErrInvalid for a malformed id.
func (s *Store) CheckEnrolmentCode(ctx context.Context, id, code string) error {
	if err := checkID("operator ID", id); err != nil {
		return err
	}
	now := s.now()
	var result error
	err := s.write(ctx, "check enrolment code", func(tx *sql.Tx) error {
		r, err := s.getOp(ctx, tx, "check enrolment code", id)
		if errors.Is(err, ErrNotFound) {
			result = fmt.Errorf("operator: check enrolment code: %w", ErrBadCode) // the operator's existence is not revealed
			return nil
		}
		if err != nil {
			return err
		}
		switch r.State {
		case StateInvited:
		case StateLocked:
			result = fmt.Errorf("operator: check enrolment code: %w (%w)", ErrBadCode, ErrLocked)
			return nil
		default:
			result = fmt.Errorf("operator: check enrolment code: %w", ErrBadCode)
			return nil
		}
		stored := r.codeHash
		if len(stored) != sha256.Size {
			stored = make([]byte, sha256.Size) // no code: compare anyway, fail below
		}
		var given []byte
		if len(code) <= maxCodeInput {
			given = codeHash(code)
		} else {
			given = make([]byte, sha256.Size)
		}
		ok := subtle.ConstantTimeCompare(given, stored) == 1 && len(r.codeHash) == sha256.Size && len(code) <= maxCodeInput
		if !ok {
			locked, err := s.recordFailureTx(ctx, tx, r)
			if err != nil {
				return err
			}
			if locked {
				result = fmt.Errorf("operator: check enrolment code: %w (%w)", ErrBadCode, ErrLocked)
			} else {
				result = fmt.Errorf("operator: check enrolment code: %w", ErrBadCode)
			}
			return nil
		}
		if now.Sub(fromNS(r.codeNS)) > CodeTTL {
			result = fmt.Errorf("operator: check enrolment code: %w: the code expired", ErrBadCode)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return result
}

// checkCredential validates a credential's ID and data.
func checkCredential(credID, data []byte) error {
	if len(credID) < 1 || len(credID) > MaxCredentialIDLen {
		return invalidf("credential ID must be 1 to %d bytes", MaxCredentialIDLen)
	}
	if len(data) < 1 || len(data) > MaxCredentialDataLen {
		return invalidf("credential data must be 1 to %d bytes", MaxCredentialDataLen)
	}
	if !json.Valid(data) {
		return invalidf("credential data is not JSON")
	}
	return nil
}

// AddCredential stores a WebAuthn credential (ID credID, serialized as the
// JSON data) of the operator id. In StateInvited it also consumes the
// enrolment code and moves the operator to StateRegistered (ErrBadCode if
// the code expired in the meantime); the caller checks the code with
// CheckEnrolmentCode first. In StateActive it adds another credential
// (the caller re-authenticates the operator first). Otherwise it fails
// with ErrState. ErrExists if credID is already stored; ErrNotFound;
// ErrInvalid for a malformed id, an empty or too long credID or data, or
// data that is not JSON.
func (s *Store) AddCredential(ctx context.Context, id string, credID, data []byte) error {
	if err := checkID("operator ID", id); err != nil {
		return err
	}
	if err := checkCredential(credID, data); err != nil {
		return err
	}
	now := s.now()
	return s.write(ctx, "add credential", func(tx *sql.Tx) error {
		r, err := s.getOp(ctx, tx, "add credential", id)
		if err != nil {
			return err
		}
		switch r.State {
		case StateInvited:
			if len(r.codeHash) == 0 || now.Sub(fromNS(r.codeNS)) > CodeTTL {
				return fmt.Errorf("operator: add credential: %w: the enrolment code of %q expired", ErrBadCode, id)
			}
		case StateActive:
		default:
			return fmt.Errorf("operator: add credential: %w: operator %q is %s", ErrState, id, r.State)
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM credentials WHERE id = ?`, credID).Scan(&n); err != nil {
			return s.fail("add credential", err)
		}
		if n != 0 {
			return fmt.Errorf("operator: add credential: %w: credential ID already registered", ErrExists)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO credentials (id, operator, data, created_ns) VALUES (?, ?, ?, ?)`,
			credID, id, data, toNS(now)); err != nil {
			return s.fail("add credential", err)
		}
		if r.State == StateInvited {
			if _, err := tx.ExecContext(ctx, `UPDATE operators SET state = ?, code_hash = NULL, code_ns = 0 WHERE id = ?`,
				string(StateRegistered), id); err != nil {
				return s.fail("add credential", err)
			}
		}
		return nil
	})
}

// Approve activates the registered operator id: StateRegistered ->
// StateActive, ApprovedBy by. It fails with ErrSelfApproval if by is id,
// or if the operator's Role is RoleAdmin and by invited it (an
// administrator's enrolment needs a second, different administrator; the
// caller checks that by is one); with ErrState if the operator is not
// StateRegistered; ErrNotFound; ErrInvalid for malformed IDs.
func (s *Store) Approve(ctx context.Context, by, id string) error {
	if err := checkID("approver", by); err != nil {
		return err
	}
	if err := checkID("operator ID", id); err != nil {
		return err
	}
	return s.write(ctx, "approve", func(tx *sql.Tx) error {
		r, err := s.getOp(ctx, tx, "approve", id)
		if err != nil {
			return err
		}
		switch {
		case by == id:
			return fmt.Errorf("operator: approve: %w: %q cannot approve themself", ErrSelfApproval, by)
		case r.Role == RoleAdmin && by == r.InvitedBy:
			return fmt.Errorf("operator: approve: %w: %q invited administrator %q", ErrSelfApproval, by, id)
		case r.State != StateRegistered:
			return fmt.Errorf("operator: approve: %w: operator %q is %s", ErrState, id, r.State)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE operators SET state = ?, approved_by = ? WHERE id = ?`,
			string(StateActive), by, id); err != nil {
			return s.fail("approve", err)
		}
		return nil
	})
}

// Bootstrap activates the first administrator of an installation, which
// has no second administrator to approve it: the operator id must be a
// RoleAdmin in StateRegistered invited by BootstrapInviter, and no
// administrator may be StateActive (checked in the same transaction).
// ApprovedBy becomes BootstrapInviter. It fails with ErrState if any of
// this does not hold, ErrNotFound, or ErrInvalid for a malformed id.
func (s *Store) Bootstrap(ctx context.Context, id string) error {
	if err := checkID("operator ID", id); err != nil {
		return err
	}
	return s.write(ctx, "bootstrap", func(tx *sql.Tx) error {
		r, err := s.getOp(ctx, tx, "bootstrap", id)
		if err != nil {
			return err
		}
		if r.Role != RoleAdmin || r.State != StateRegistered || r.InvitedBy != BootstrapInviter {
			return fmt.Errorf("operator: bootstrap: %w: %q is not a registered administrator invited by %q", ErrState, id, BootstrapInviter)
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM operators WHERE role = ? AND state = ?`,
			string(RoleAdmin), string(StateActive)).Scan(&n); err != nil {
			return s.fail("bootstrap", err)
		}
		if n != 0 {
			return fmt.Errorf("operator: bootstrap: %w: an administrator is already active", ErrState)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE operators SET state = ?, approved_by = ? WHERE id = ?`,
			string(StateActive), BootstrapInviter, id); err != nil {
			return s.fail("bootstrap", err)
		}
		return nil
	})
}

// Get returns the operator id; ErrNotFound if there is none, ErrInvalid
// for a malformed id.
func (s *Store) Get(ctx context.Context, id string) (Operator, error) {
	if err := checkID("operator ID", id); err != nil {
		return Operator{}, err
	}
	if err := s.live(); err != nil {
		return Operator{}, err
	}
	r, err := s.getOp(ctx, s.db, "get", id)
	if err != nil {
		return Operator{}, err
	}
	return r.Operator, nil
}

// List returns every operator, in every state, ordered by ID.
func (s *Store) List(ctx context.Context) ([]Operator, error) {
	if err := s.live(); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+opCols+` FROM operators ORDER BY id`)
	if err != nil {
		return nil, s.fail("list", err)
	}
	defer rows.Close()
	var out []Operator
	for rows.Next() {
		r, err := scanOp(rows)
		if err != nil {
			return nil, s.fail("list", err)
		}
		out = append(out, r.Operator)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("list", err)
	}
	return out, nil
}

// SetGrant sets the role and the grant (stored normalized, see Grant) of
// the operator id, in any state. ErrNotFound; ErrInvalid for a malformed
// id, an unknown role or a malformed grant. Making an operator an
// administrator is not guarded here: see the package documentation.
func (s *Store) SetGrant(ctx context.Context, id string, role Role, g Grant) error {
	if err := checkID("operator ID", id); err != nil {
		return err
	}
	if !role.Valid() {
		return invalidf("unknown role %q", clip(string(role)))
	}
	g, err := g.normalize()
	if err != nil {
		return err
	}
	return s.write(ctx, "set grant", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE operators SET role = ?, tenants = ?, types = ? WHERE id = ?`,
			string(role), jsonList(g.Tenants), jsonList(g.Types), id)
		return s.affected("set grant", id, res, err)
	})
}

// affected turns the result of an UPDATE or DELETE of the row id into nil,
// ErrNotFound if no row was affected, or the wrapped database error.
func (s *Store) affected(op, id string, res sql.Result, err error) error {
	if err != nil {
		return s.fail(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return s.fail(op, err)
	}
	if n == 0 {
		return fmt.Errorf("operator: %s: %w: %s", op, ErrNotFound, id)
	}
	return nil
}

// Disable moves the operator id, from any state, to StateDisabled, the
// final state: it voids any enrolment code and lock, and ends all its
// sessions. Its credentials and history stay. Disabling a disabled
// operator succeeds and changes nothing. ErrNotFound; ErrInvalid for a
// malformed id.
func (s *Store) Disable(ctx context.Context, id string) error {
	if err := checkID("operator ID", id); err != nil {
		return err
	}
	return s.write(ctx, "disable", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE operators SET state = ?, locked_from = '', locked_ns = 0,
			code_hash = NULL, code_ns = 0 WHERE id = ?`, string(StateDisabled), id)
		if err := s.affected("disable", fmt.Sprintf("operator %q", id), res, err); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE operator = ?`, id); err != nil {
			return s.fail("disable", err)
		}
		return nil
	})
}

const credCols = `id, operator, data, created_ns, last_used_ns`

func scanCred(sc scanner) (Credential, error) {
	var c Credential
	var created, used int64
	if err := sc.Scan(&c.ID, &c.Operator, &c.Data, &created, &used); err != nil {
		return Credential{}, err
	}
	c.CreatedAt, c.LastUsed = fromNS(created), fromNS(used)
	return c, nil
}

// Credentials returns the credentials of the operator id, oldest first
// (none is not an error). ErrNotFound if the operator does not exist;
// ErrInvalid for a malformed id.
func (s *Store) Credentials(ctx context.Context, id string) ([]Credential, error) {
	if err := checkID("operator ID", id); err != nil {
		return nil, err
	}
	if err := s.live(); err != nil {
		return nil, err
	}
	if _, err := s.getOp(ctx, s.db, "credentials", id); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+credCols+` FROM credentials WHERE operator = ? ORDER BY created_ns, id`, id)
	if err != nil {
		return nil, s.fail("credentials", err)
	}
	defer rows.Close()
	var out []Credential
	for rows.Next() {
		c, err := scanCred(rows)
		if err != nil {
			return nil, s.fail("credentials", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("credentials", err)
	}
	return out, nil
}

// CredentialByID returns the credential credID (for a sign-in with a
// discoverable credential, where the browser names the credential before
// the operator). ErrNotFound; ErrInvalid for an empty or too long credID.
func (s *Store) CredentialByID(ctx context.Context, credID []byte) (Credential, error) {
	if len(credID) < 1 || len(credID) > MaxCredentialIDLen {
		return Credential{}, invalidf("credential ID must be 1 to %d bytes", MaxCredentialIDLen)
	}
	if err := s.live(); err != nil {
		return Credential{}, err
	}
	c, err := scanCred(s.db.QueryRowContext(ctx, `SELECT `+credCols+` FROM credentials WHERE id = ?`, credID))
	if errors.Is(err, sql.ErrNoRows) {
		return Credential{}, fmt.Errorf("operator: credential: %w", ErrNotFound)
	}
	if err != nil {
		return Credential{}, s.fail("credential", err)
	}
	return c, nil
}

// UpdateCredential replaces the data of the credential credID after a
// sign-in with it (the sign counter and flags change) and sets its
// LastUsed to now. ErrNotFound; ErrInvalid as for AddCredential.
func (s *Store) UpdateCredential(ctx context.Context, credID, data []byte) error {
	if err := checkCredential(credID, data); err != nil {
		return err
	}
	now := toNS(s.now())
	return s.write(ctx, "update credential", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE credentials SET data = ?, last_used_ns = ? WHERE id = ?`, data, now, credID)
		return s.affected("update credential", "credential", res, err)
	})
}

// RemoveCredential deletes the credential credID of the operator id (a
// lost or retired authenticator). ErrNotFound if the operator has no such
// credential; ErrInvalid for a malformed id or credID.
func (s *Store) RemoveCredential(ctx context.Context, id string, credID []byte) error {
	if err := checkID("operator ID", id); err != nil {
		return err
	}
	if len(credID) < 1 || len(credID) > MaxCredentialIDLen {
		return invalidf("credential ID must be 1 to %d bytes", MaxCredentialIDLen)
	}
	return s.write(ctx, "remove credential", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM credentials WHERE id = ? AND operator = ?`, credID, id)
		return s.affected("remove credential", fmt.Sprintf("credential of %q", id), res, err)
	})
}

// recordFailureTx counts a failure of the operator r in tx and locks it
// when the count reaches the lockout threshold: StateLocked (remembering
// the state to return to on Unlock), LockedAt now, all sessions ended. It
// reports whether the operator is locked after the call. A disabled
// operator's failures are counted but it is not locked.
func (s *Store) recordFailureTx(ctx context.Context, tx *sql.Tx, r opRow) (bool, error) {
	failures := r.Failures + 1
	lock := failures >= s.lockoutAfter && (r.State == StateInvited || r.State == StateRegistered || r.State == StateActive)
	if !lock {
		if _, err := tx.ExecContext(ctx, `UPDATE operators SET failures = ? WHERE id = ?`, failures, r.ID); err != nil {
			return false, s.fail("record failure", err)
		}
		return r.State == StateLocked, nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE operators SET failures = ?, state = ?, locked_from = ?, locked_ns = ? WHERE id = ?`,
		failures, string(StateLocked), string(r.State), toNS(s.now()), r.ID); err != nil {
		return false, s.fail("record failure", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE operator = ?`, r.ID); err != nil {
		return false, s.fail("record failure", err)
	}
	return true, nil
}

// RecordFailure counts a failed sign-in (or PIN or enrolment attempt) of
// the operator id: Failures is incremented and, when it reaches
// Config.LockoutAfter, the operator becomes StateLocked with LockedAt now
// and all its sessions are deleted. It returns locked=true on the call that
// locked the operator and on later calls while it stays locked. A disabled
// operator is not locked. It raises no alert; the caller does. ErrNotFound
// for an unknown id; ErrInvalid for a malformed one.
func (s *Store) RecordFailure(ctx context.Context, id string) (locked bool, err error) {
	if err := checkID("operator ID", id); err != nil {
		return false, err
	}
	err = s.write(ctx, "record failure", func(tx *sql.Tx) error {
		r, err := s.getOp(ctx, tx, "record failure", id)
		if err != nil {
			return err
		}
		locked, err = s.recordFailureTx(ctx, tx, r)
		return err
	})
	return locked, err
}

// RecordSuccess records a successful sign-in of the operator id: Failures
// becomes 0. It fails with ErrLocked, changing nothing, if the operator was
// locked in the meantime (the caller then refuses the sign-in).
// ErrNotFound; ErrInvalid for a malformed id.
func (s *Store) RecordSuccess(ctx context.Context, id string) error {
	if err := checkID("operator ID", id); err != nil {
		return err
	}
	return s.write(ctx, "record success", func(tx *sql.Tx) error {
		r, err := s.getOp(ctx, tx, "record success", id)
		if err != nil {
			return err
		}
		if r.State == StateLocked {
			return fmt.Errorf("operator: record success: %w: operator %q", ErrLocked, id)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE operators SET failures = 0 WHERE id = ?`, id); err != nil {
			return s.fail("record success", err)
		}
		return nil
	})
}

// Unlock unlocks the operator id on behalf of by: StateLocked -> the state
// it was locked in (StateActive for an operator locked after failed
// sign-ins; StateInvited or StateRegistered for one locked during
// enrolment), Failures 0, LockedAt zero. It fails with ErrSelfApproval if
// by is id, ErrState if the operator is not locked, ErrNotFound, or
// ErrInvalid for malformed IDs.
func (s *Store) Unlock(ctx context.Context, by, id string) error {
	if err := checkID("unlocker", by); err != nil {
		return err
	}
	if err := checkID("operator ID", id); err != nil {
		return err
	}
	if by == id {
		return fmt.Errorf("operator: unlock: %w: %q cannot unlock themself", ErrSelfApproval, by)
	}
	return s.write(ctx, "unlock", func(tx *sql.Tx) error {
		r, err := s.getOp(ctx, tx, "unlock", id)
		if err != nil {
			return err
		}
		if r.State != StateLocked {
			return fmt.Errorf("operator: unlock: %w: operator %q is %s", ErrState, id, r.State)
		}
		to := r.lockedFrom
		if to != StateInvited && to != StateRegistered {
			to = StateActive
		}
		if _, err := tx.ExecContext(ctx, `UPDATE operators SET state = ?, locked_from = '', locked_ns = 0, failures = 0 WHERE id = ?`,
			string(to), id); err != nil {
			return s.fail("unlock", err)
		}
		return nil
	})
}

// CanSignIn returns nil if the operator id exists and is StateActive;
// ErrLocked if it is locked, ErrState if it is in another state,
// ErrNotFound if it does not exist, ErrInvalid for a malformed id.
func (s *Store) CanSignIn(ctx context.Context, id string) error {
	op, err := s.Get(ctx, id)
	if err != nil {
		return err
	}
	return canSignIn(op)
}

func canSignIn(op Operator) error {
	switch op.State {
	case StateActive:
		return nil
	case StateLocked:
		return fmt.Errorf("operator: %w: operator %q", ErrLocked, op.ID)
	default:
		return fmt.Errorf("operator: %w: operator %q is %s", ErrState, op.ID, op.State)
	}
}

// SetPIN sets the PIN of the operator id (for the smart card + PIN
// sign-in). The PIN must meet the policy (a *PINError otherwise, which
// wraps ErrInvalid) and differ from the last PINPolicy.History PINs of the
// operator, the current one included (ErrPINReused). It is stored as an
// Argon2id hash with a random 16-byte salt and its parameters,
// "$argon2id$v=19$m=...,t=...,p=...$salt$hash"; PINSetAt becomes now.
// ErrState for a disabled operator or if the PIN was changed concurrently;
// ErrNotFound; ErrInvalid for a malformed id.
func (s *Store) SetPIN(ctx context.Context, id, pin string) error {
	if err := checkID("operator ID", id); err != nil {
		return err
	}
	if err := s.pin.Check(pin); err != nil {
		return fmt.Errorf("operator: set PIN of %q: %w", id, err)
	}
	if err := s.live(); err != nil {
		return err
	}
	r, err := s.getOp(ctx, s.db, "set PIN", id)
	if err != nil {
		return err
	}
	if r.State == StateDisabled {
		return fmt.Errorf("operator: set PIN: %w: operator %q is disabled", ErrState, id)
	}
	history, err := s.pinHistory(ctx, id)
	if err != nil {
		return err
	}
	var hash string
	err = s.argon(ctx, func() error {
		for _, h := range history {
			ok, err := verifyPIN(pin, h)
			if err != nil {
				return fmt.Errorf("operator: set PIN of %q: %w", id, err)
			}
			if ok {
				return fmt.Errorf("operator: set PIN of %q: %w: it is one of the last %d", id, ErrPINReused, s.pin.History)
			}
		}
		var err error
		hash, err = hashPIN(pin, s.argonParams)
		return err
	})
	if err != nil {
		return err
	}
	now := toNS(s.now())
	return s.write(ctx, "set PIN", func(tx *sql.Tx) error {
		cur, err := s.getOp(ctx, tx, "set PIN", id)
		if err != nil {
			return err
		}
		if cur.pinHash != r.pinHash || cur.State == StateDisabled {
			return fmt.Errorf("operator: set PIN: %w: operator %q changed meanwhile", ErrState, id)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE operators SET pin_hash = ?, pin_set_ns = ? WHERE id = ?`, hash, now, id); err != nil {
			return s.fail("set PIN", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO pin_history (operator, hash, set_ns) VALUES (?, ?, ?)`, id, hash, now); err != nil {
			return s.fail("set PIN", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM pin_history WHERE operator = ? AND seq NOT IN
			(SELECT seq FROM pin_history WHERE operator = ? ORDER BY seq DESC LIMIT ?)`, id, id, s.pin.History); err != nil {
			return s.fail("set PIN", err)
		}
		return nil
	})
}

// pinHistory returns the hashes of the last PINPolicy.History PINs of the
// operator id, newest first.
func (s *Store) pinHistory(ctx context.Context, id string) ([]string, error) {
	if s.pin.History == 0 {
		return nil, nil
	}
	rows, err := s.db.QueryContext(ctx, `SELECT hash FROM pin_history WHERE operator = ? ORDER BY seq DESC LIMIT ?`, id, s.pin.History)
	if err != nil {
		return nil, s.fail("PIN history", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			return nil, s.fail("PIN history", err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("PIN history", err)
	}
	return out, nil
}

// CheckPIN checks pin against the PIN of the operator id, in constant time
// (Argon2id with the stored parameters). It fails with ErrNoPIN if the
// operator has none, ErrBadPIN if it does not match, and ErrPINExpired if
// it matches but now is after PINSetAt + PINPolicy.Expiry. It does not
// record a failure: the caller calls RecordFailure. It does not check the
// operator's state: the caller calls CanSignIn. ErrNotFound; ErrInvalid
// for a malformed id.
func (s *Store) CheckPIN(ctx context.Context, id, pin string) error {
	if err := checkID("operator ID", id); err != nil {
		return err
	}
	if err := s.live(); err != nil {
		return err
	}
	r, err := s.getOp(ctx, s.db, "check PIN", id)
	if err != nil {
		return err
	}
	if r.pinHash == "" {
		return fmt.Errorf("operator: check PIN: %w: operator %q", ErrNoPIN, id)
	}
	ok := false
	if len(pin) <= maxPINInput {
		err = s.argon(ctx, func() error {
			var err error
			ok, err = verifyPIN(pin, r.pinHash)
			return err
		})
		if err != nil {
			return fmt.Errorf("operator: check PIN of %q: %w", id, err)
		}
	}
	if !ok {
		return fmt.Errorf("operator: check PIN: %w: operator %q", ErrBadPIN, id)
	}
	if s.pin.Expiry > 0 && s.now().After(r.PINSetAt.Add(s.pin.Expiry)) {
		return fmt.Errorf("operator: check PIN: %w: operator %q", ErrPINExpired, id)
	}
	return nil
}

// BindCertificate binds the smart-card certificate whose DER encoding has
// the SHA-256 sha256hex (64 hex digits, either case; stored in lower case)
// to the operator id, replacing any earlier binding; "" removes the
// binding. ErrExists if another operator holds the certificate;
// ErrNotFound; ErrInvalid for a malformed id or hash.
func (s *Store) BindCertificate(ctx context.Context, id, sha256hex string) error {
	if err := checkID("operator ID", id); err != nil {
		return err
	}
	h := ""
	if sha256hex != "" {
		var err error
		if h, err = checkCertHash(sha256hex); err != nil {
			return err
		}
	}
	return s.write(ctx, "bind certificate", func(tx *sql.Tx) error {
		if h != "" {
			var holder string
			err := tx.QueryRowContext(ctx, `SELECT id FROM operators WHERE cert_sha256 = ? AND id != ?`, h, id).Scan(&holder)
			if err == nil {
				return fmt.Errorf("operator: bind certificate: %w: the certificate is bound to %q", ErrExists, holder)
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return s.fail("bind certificate", err)
			}
		}
		res, err := tx.ExecContext(ctx, `UPDATE operators SET cert_sha256 = ? WHERE id = ?`, h, id)
		return s.affected("bind certificate", fmt.Sprintf("operator %q", id), res, err)
	})
}

// RegisterCertificate completes the smart-card enrolment of the invited
// operator id: in one transaction it binds the certificate with the
// SHA-256 sha256hex, consumes the enrolment code and moves the operator to
// StateRegistered, where it waits for approval as after AddCredential. The
// caller has checked the code (CheckEnrolmentCode) and set the PIN
// (SetPIN). ErrBadCode if the code expired, ErrState unless StateInvited,
// ErrExists if another operator holds the certificate, ErrNotFound,
// ErrInvalid for a malformed id or hash.
func (s *Store) RegisterCertificate(ctx context.Context, id, sha256hex string) error {
	if err := checkID("operator ID", id); err != nil {
		return err
	}
	h, err := checkCertHash(sha256hex)
	if err != nil {
		return err
	}
	now := s.now()
	return s.write(ctx, "register certificate", func(tx *sql.Tx) error {
		r, err := s.getOp(ctx, tx, "register certificate", id)
		if err != nil {
			return err
		}
		if r.State != StateInvited {
			return fmt.Errorf("operator: register certificate: %w: operator %q is %s", ErrState, id, r.State)
		}
		if len(r.codeHash) == 0 || now.Sub(fromNS(r.codeNS)) > CodeTTL {
			return fmt.Errorf("operator: register certificate: %w: the enrolment code of %q expired", ErrBadCode, id)
		}
		var holder string
		err = tx.QueryRowContext(ctx, `SELECT id FROM operators WHERE cert_sha256 = ? AND id != ?`, h, id).Scan(&holder)
		if err == nil {
			return fmt.Errorf("operator: register certificate: %w: the certificate is bound to %q", ErrExists, holder)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return s.fail("register certificate", err)
		}
		_, err = tx.ExecContext(ctx, `UPDATE operators SET cert_sha256 = ?, state = ?, code_hash = NULL, code_ns = 0 WHERE id = ?`,
			h, string(StateRegistered), id)
		if err != nil {
			return s.fail("register certificate", err)
		}
		return nil
	})
}

// ByCertificate returns the operator bound to the certificate with the
// SHA-256 sha256hex (64 hex digits, either case), in whatever state; the
// caller checks CanSignIn. ErrNotFound; ErrInvalid for a malformed hash.
func (s *Store) ByCertificate(ctx context.Context, sha256hex string) (Operator, error) {
	h, err := checkCertHash(sha256hex)
	if err != nil {
		return Operator{}, err
	}
	if err := s.live(); err != nil {
		return Operator{}, err
	}
	r, err := scanOp(s.db.QueryRowContext(ctx, `SELECT `+opCols+` FROM operators WHERE cert_sha256 = ?`, h))
	if errors.Is(err, sql.ErrNoRows) {
		return Operator{}, fmt.Errorf("operator: by certificate: %w", ErrNotFound)
	}
	if err != nil {
		return Operator{}, s.fail("by certificate", err)
	}
	return r.Operator, nil
}
