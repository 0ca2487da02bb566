package mysql

import (
	"errors"
	"strings"

	driver "github.com/go-sql-driver/mysql"
)

// The server's error numbers the store and its callers react to (MariaDB
// and MySQL 8 share them except the CHECK refusal).
const (
	errDupEntry        = 1062 // ER_DUP_ENTRY
	errLockWaitTimeout = 1205 // ER_LOCK_WAIT_TIMEOUT
	errDeadlock        = 1213 // ER_LOCK_DEADLOCK
	errCheckMySQL      = 3819 // ER_CHECK_CONSTRAINT_VIOLATED (MySQL 8)
	errCheckMariaDB    = 4025 // ER_CONSTRAINT_FAILED (MariaDB)
)

func errNumber(err error) (uint16, bool) {
	var me *driver.MySQLError
	if !errors.As(err, &me) {
		return 0, false
	}
	return me.Number, true
}

// IsCheckViolation reports a CHECK constraint refusal (issued_quantity over
// total_quantity, for one).
func IsCheckViolation(err error) bool {
	n, ok := errNumber(err)
	return ok && (n == errCheckMySQL || n == errCheckMariaDB)
}

// IsDuplicate reports a unique key refusal ((coupon, user) has a row).
func IsDuplicate(err error) bool {
	n, ok := errNumber(err)
	return ok && n == errDupEntry
}

// IsLockConflict reports a deadlock or a lock wait timeout: the
// transaction was rolled back (or its statement was) and may be retried.
func IsLockConflict(err error) bool {
	n, ok := errNumber(err)
	return ok && (n == errDeadlock || n == errLockWaitTimeout)
}

// IsTransient reports whether err is a database error worth retrying as is:
// a lost or refused connection, a deadlock, a lock wait timeout, a server
// shutting down or read-only during a failover. The sinker retries every
// error with backoff anyway; this only labels logs and metrics.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	if n, ok := errNumber(err); ok {
		switch n {
		case errDeadlock, errLockWaitTimeout, 1040, 1053, 1290, 1927, 2006, 2013, 1158, 1159, 1160, 1161:
			return true
		}
		return false
	}
	return !strings.Contains(err.Error(), "syntax")
}
