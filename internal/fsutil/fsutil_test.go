package fsutil

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "key")
	for _, content := range []string{"first", "second"} {
		if err := WriteFileAtomic(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil || string(b) != content {
			t.Fatalf("read %q, %v; want %q", b, err, content)
		}
		st, _ := os.Stat(p)
		if st.Mode().Perm() != 0o600 {
			t.Errorf("mode %v, want 0600", st.Mode().Perm())
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("%d files left in the directory, want only the target", len(ents))
	}
	if err := WriteFileAtomic(filepath.Join(dir, "missing", "x"), nil, 0o600); err == nil {
		t.Errorf("writing into a missing directory succeeded")
	}
}

// TestCreateSynced checks that CreateSynced writes a new file with its
// mode, refuses one that exists (leaving it as it was), and leaves nothing
// when fill fails.
func TestCreateSynced(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a")
	write := func(s string) func(io.Writer) error {
		return func(w io.Writer) error { _, err := io.WriteString(w, s); return err }
	}
	if err := CreateSynced(p, 0o600, write("one")); err != nil {
		t.Fatal(err)
	}
	if err := CreateSynced(p, 0o600, write("two")); err == nil {
		t.Fatal("an existing file was created again")
	}
	b, err := os.ReadFile(p)
	info, _ := os.Stat(p)
	if err != nil || string(b) != "one" || info.Mode().Perm() != 0o600 {
		t.Fatalf("file %q mode %v (%v), want \"one\" 0600", b, info.Mode().Perm(), err)
	}
	failed := filepath.Join(dir, "b")
	if err := CreateSynced(failed, 0o600, func(io.Writer) error { return errors.New("fill failed") }); err == nil {
		t.Fatal("a failed fill succeeded")
	}
	if _, err := os.Stat(failed); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a failed fill left the file: %v", err)
	}
}
