/* shared/cli_limits.h — defaults and bounds of the instar command line that
 * instarfs, which runs instar for each resize, must agree with: one
 * definition for both. The man pages (contrib/instar.1.scd,
 * contrib/instarfs.8.scd) and README.md give the same values. */
#ifndef INSTAR_CLI_LIMITS_H
#define INSTAR_CLI_LIMITS_H

/* --max-staged: the bytes one resize may stage before its commit. */
#define INSTAR_MAX_STAGED_DEFAULT (1ull << 30)

/* --timeout, in seconds: the whole resize, setup to commit. */
#define INSTAR_TIMEOUT_DEFAULT_S 30u
#define INSTAR_TIMEOUT_MAX_S 86400u

/* --backing-dir may be given at most this many times. */
#define INSTAR_MAX_BACKING_DIRS 16

#endif
