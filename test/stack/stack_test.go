package stack

import (
	"bytes"
	"context"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/minio/minio-go/v7"
)

func TestPostgresMajors(t *testing.T) {
	for _, major := range []string{"15", "18"} {
		t.Run(major, func(t *testing.T) {
			t.Parallel()
			pg := StartPostgres(t, major)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			conn, err := pgx.Connect(ctx, pg.DSN)
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			defer conn.Close(ctx)
			var v string
			if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&v); err != nil {
				t.Fatal(err)
			}
			if v[:len(major)] != major {
				t.Fatalf("server_version %s, want major %s", v, major)
			}
			var listen string
			if err := conn.QueryRow(ctx, "SHOW listen_addresses").Scan(&listen); err != nil {
				t.Fatal(err)
			}
			if listen != "127.0.0.1" {
				t.Fatalf("listen_addresses %q, want loopback only", listen)
			}
			// The password is required: a wrong one is refused.
			bad := "postgres://postgres:wrong@127.0.0.1:" + strconv.Itoa(pg.Port) + "/postgres?sslmode=disable"
			if c, err := pgx.Connect(ctx, bad); err == nil {
				c.Close(ctx)
				t.Fatal("connected with a wrong password")
			}
		})
	}
}

func TestS3(t *testing.T) {
	s3 := StartS3(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	body := []byte("hello")
	if _, err := s3.Client.PutObject(ctx, s3.Bucket, "a/b", bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
		t.Fatalf("put: %v", err)
	}
	obj, err := s3.Client.GetObject(ctx, s3.Bucket, "a/b", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(obj)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, body) {
		t.Fatalf("got %q, want %q", got, body)
	}
}
