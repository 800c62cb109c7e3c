package storage

import (
	"strings"
	"testing"
)

func TestParseLocation(t *testing.T) {
	tests := []struct {
		in      string
		want    Location
		wantErr string
	}{
		{
			in:   "s3://bkt/some/prefix?endpoint=127.0.0.1:9000&region=eu-west-1&insecure=true",
			want: Location{Scheme: SchemeS3, Bucket: "bkt", Prefix: "some/prefix", Endpoint: "127.0.0.1:9000", Region: "eu-west-1", Insecure: true},
		},
		{
			in:   "s3://bkt",
			want: Location{Scheme: SchemeS3, Bucket: "bkt", Endpoint: DefaultS3Endpoint, Region: DefaultS3Region},
		},
		{
			in:   "s3://bkt/p/?endpoint=minio.example:443",
			want: Location{Scheme: SchemeS3, Bucket: "bkt", Prefix: "p", Endpoint: "minio.example:443", Region: DefaultS3Region},
		},
		{in: "file:///var/backups/", want: Location{Scheme: SchemeFile, Path: "/var/backups"}},
		{in: "file://localhost/mnt", want: Location{Scheme: SchemeFile, Path: "/mnt"}},
		{in: "file://relative/path", wantErr: "absolute path"},
		{in: "file:///x?y=1", wantErr: "no options"},
		{in: "/var/backups", wantErr: "want s3://"},
		{in: "gs://bucket", wantErr: `unsupported scheme "gs"`},
		{in: "s3:///prefix", wantErr: "no bucket"},
		{in: "s3://b/prefix", wantErr: "not a valid S3 bucket name"},
		{in: "s3://Bucket/prefix", wantErr: "not a valid S3 bucket name"},
		{in: "s3://bkt?endpoint=", wantErr: "not HOST:PORT"},
		{in: "s3://bkt?endpoint=:9000", wantErr: "not HOST:PORT"},
		{in: "s3://bkt?endpoint=h:port", wantErr: "not a number"},
		{in: "s3://bkt?insecure=maybe", wantErr: "not true or false"},
		{in: "s3://bkt?colour=blue", wantErr: `unknown option "colour"`},
		{in: "s3://key:secret@bkt", wantErr: "credentials do not belong"},
		{in: "s3://bkt/a/../b", wantErr: "not a clean path"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseLocation(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseLocation(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
				}
				if strings.Contains(tt.in, "secret") && strings.Contains(err.Error(), "secret") {
					t.Fatalf("error repeats the credentials: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseLocation(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParseLocation(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			// String gives a location that parses back to the same thing.
			again, err := ParseLocation(got.String())
			if err != nil || again != got {
				t.Fatalf("round trip of %q via %q = %+v, %v", tt.in, got.String(), again, err)
			}
		})
	}
}

func TestCheckKey(t *testing.T) {
	for _, k := range []string{"", "/a", "a/", "a//b", "../a", "a/../b", "..", "./a"} {
		if checkKey(k) == nil {
			t.Errorf("checkKey(%q) accepted", k)
		}
	}
	for _, k := range []string{"a", "a/b/c.json", "t/s/20260101T000000Z-abcd/manifest.json"} {
		if err := checkKey(k); err != nil {
			t.Errorf("checkKey(%q): %v", k, err)
		}
	}
}
