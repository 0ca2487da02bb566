package stack

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/go-sql-driver/mysql"
)

// mysqlService runs Debian's MariaDB (mariadbd) with dev/test durability
// settings: no binary log, InnoDB log flushed once a second, no
// performance_schema. root has no password and is reachable over TCP.
type mysqlService struct{ s *Stack }

func (m *mysqlService) name() string    { return MySQL }
func (m *mysqlService) ports() []int    { return []int{m.s.cfg.MySQLPort} }
func (m *mysqlService) addr() string    { return m.s.MySQLAddr() }
func (m *mysqlService) dir() string     { return m.s.svcDir(MySQL) }
func (m *mysqlService) data() string    { return filepath.Join(m.dir(), "data") }
func (m *mysqlService) logFile() string { return filepath.Join(m.dir(), "mysql.log") }
func (m *mysqlService) tools() []tool {
	return []tool{{"mariadbd", "mariadb-server"}, {"mariadb-install-db", "mariadb-server"}}
}

func (m *mysqlService) role(context.Context) string { return "primary" }

func (m *mysqlService) stopTimeout() time.Duration  { return 60 * time.Second }
func (m *mysqlService) startTimeout() time.Duration { return 90 * time.Second }

// socket returns the Unix socket path, kept under the 108-byte limit of
// sun_path even for long temporary folders.
func (m *mysqlService) socket() string {
	p := filepath.Join(m.dir(), "mysqld.sock")
	if len(p) < 100 {
		return p
	}
	h := sha256.Sum256([]byte(p))
	return filepath.Join(os.TempDir(), "coupon-mysql-"+hex.EncodeToString(h[:6])+".sock")
}

func (m *mysqlService) initFile() string { return filepath.Join(m.dir(), "init.sql") }

func (m *mysqlService) prepare(ctx context.Context) error {
	// Run at every start: root over TCP from 127.0.0.1 (skip-name-resolve
	// means root@localhost matches only the socket).
	initSQL := "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';\n" +
		"GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;\n" +
		"CREATE USER IF NOT EXISTS 'root'@'::1';\n" +
		"GRANT ALL PRIVILEGES ON *.* TO 'root'@'::1' WITH GRANT OPTION;\n"
	if err := os.WriteFile(m.initFile(), []byte(initSQL), 0o644); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(m.dir(), "tmp"), 0o755); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(m.data(), "mysql")); err == nil {
		return nil // initialised before
	}
	m.s.printf("%-5s initialising data folder %s", MySQL, m.data())
	tmp := m.data() + ".init"
	_ = os.RemoveAll(tmp)
	args := []string{mustLook("mariadb-install-db"), "--no-defaults",
		"--datadir=" + tmp, "--auth-root-authentication-method=normal",
		"--skip-test-db", "--skip-name-resolve", "--innodb-log-file-size=" + m.s.cfg.MySQLLogFileSize}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	if err := run(ctx, m.logFile(), m.dir(), nil, args...); err != nil {
		return fmt.Errorf("mariadb-install-db: %w", err)
	}
	return os.Rename(tmp, m.data())
}

func (m *mysqlService) command() ([]string, error) {
	args := []string{mustLook("mariadbd"), "--no-defaults",
		"--datadir=" + m.data(),
		"--socket=" + m.socket(),
		"--pid-file=" + filepath.Join(m.dir(), "mariadbd.pid"),
		"--tmpdir=" + filepath.Join(m.dir(), "tmp"),
		"--log-error=" + m.logFile(),
		"--init-file=" + m.initFile(),
		fmt.Sprintf("--port=%d", m.s.cfg.MySQLPort),
		"--bind-address=127.0.0.1",
		"--skip-name-resolve",
		"--skip-log-bin",
		"--performance-schema=OFF",
		"--innodb-buffer-pool-size=" + m.s.cfg.MySQLBufferPool,
		"--innodb-log-file-size=" + m.s.cfg.MySQLLogFileSize,
		"--innodb-flush-log-at-trx-commit=2",
		// Flush dirty pages while idle too (the default low-water mark 0
		// never does): otherwise the redo log stays near full between
		// runs and the next load pays for forced flushing.
		"--innodb-max-dirty-pages-pct-lwm=10",
		"--innodb-io-capacity=1000",
		"--max-connections=1000",
		"--max-allowed-packet=64M",
		"--character-set-server=utf8mb4",
		"--collation-server=utf8mb4_general_ci",
		"--default-time-zone=+00:00",
	}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	return args, nil
}

func (m *mysqlService) ready(ctx context.Context) error {
	cfg := mysql.NewConfig()
	cfg.User = "root"
	cfg.Net = "tcp"
	cfg.Addr = m.addr()
	cfg.Timeout = 2 * time.Second
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return err
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	var datadir string
	if err := db.QueryRowContext(ctx, "SELECT @@datadir").Scan(&datadir); err != nil {
		return err
	}
	// The server answering must be ours, not another stack's on this port.
	if filepath.Clean(datadir) != filepath.Clean(m.data()) {
		return fmt.Errorf("the server on %s serves %s, not this stack's %s", m.addr(), datadir, m.data())
	}
	return nil
}
