// preforkEntry, the binary's entry point with -ldflags -E (prefork.go). The kernel starts it
// with the stack holding argc, argv[0..argc-1], NULL, envp..., NULL. The process that goes on
// into the Go runtime leaves with SP as it came. No Go code runs here (no runtime, no stack
// checks): raw system calls only.

#include "go_asm.h"
#include "textflag.h"

#define SYS_read 0
#define SYS_close 3
#define SYS_madvise 28
#define MADV_POPULATE_READ 22
#define SYS_rt_sigaction 13
#define SYS_socketpair 53
#define SYS_fork 57
#define SYS_wait4 61
#define SYS_setsid 112
#define SYS_exit_group 231
#define EINTR 4
#define SIGHUP 1
#define SIGPIPE 13
#define AF_UNIX 1
#define SOCK_STREAM_CLOEXEC 0x80001

DATA runtimeName<>+0(SB)/8, $"conmon-g"
DATA runtimeName<>+8(SB)/8, $"o-runtim"
DATA runtimeName<>+16(SB)/2, $"e\x00"
GLOBL runtimeName<>(SB), RODATA|NOPTR, $18

DATA syncArg<>+0(SB)/6, $"--sync"
GLOBL syncArg<>(SB), RODATA|NOPTR, $6

DATA ourEnv<>+0(SB)/8, $"_CONMON_"
DATA ourEnv<>+8(SB)/3, $"GO_"
GLOBL ourEnv<>(SB), RODATA|NOPTR, $11

DATA maxprocsEnv<>+0(SB)/8, $"GOMAXPRO"
DATA maxprocsEnv<>+8(SB)/3, $"CS="
GLOBL maxprocsEnv<>(SB), RODATA|NOPTR, $11

DATA oneProc<>+0(SB)/8, $"GOMAXPRO"
DATA oneProc<>+8(SB)/5, $"CS=1\x00"
GLOBL oneProc<>(SB), RODATA|NOPTR, $13

DATA startEnv<>+0(SB)/8, $"_OCI_STA"
DATA startEnv<>+8(SB)/7, $"RTPIPE="
GLOBL startEnv<>(SB), RODATA|NOPTR, $15

// struct kernel_sigaction with sa_handler = SIG_IGN.
DATA ignore<>+0(SB)/8, $1
DATA ignore<>+8(SB)/8, $0
DATA ignore<>+16(SB)/8, $0
DATA ignore<>+24(SB)/8, $0
GLOBL ignore<>(SB), RODATA|NOPTR, $32

// POPULATE maps [start, end) rounded out to pages, and records it at prefaulted+slot.
#define POPULATE(start, end, slot) \
	LEAQ	start, DI; \
	ANDQ	$~4095, DI; \
	LEAQ	end, SI; \
	SUBQ	DI, SI; \
	MOVQ	DI, ·prefaulted+slot(SB); \
	MOVQ	SI, ·prefaulted+8+slot(SB); \
	MOVQ	$MADV_POPULATE_READ, DX; \
	MOVQ	$SYS_madvise, AX; \
	SYSCALL

// hasPrefix: SI string (NUL-terminated), DI literal, CX its length. AX = 1 when the string
// begins with the literal; a literal that ends in NUL asks for the whole string. Clobbers
// CX, DX, SI, DI.
TEXT hasPrefix<>(SB),NOSPLIT|NOFRAME,$0
loop:
	TESTQ	CX, CX
	JZ	yes
	MOVB	(SI), DX
	CMPB	DL, (DI)
	JNE	no
	INCQ	SI
	INCQ	DI
	DECQ	CX
	JMP	loop
yes:
	MOVQ	$1, AX
	RET
no:
	XORQ	AX, AX
	RET

// func preforkEntry()
TEXT ·preforkEntry(SB),NOSPLIT|NOFRAME,$0-0
	// R12 argc, R13 argv, R14 the envp cursor, R15 "start pipe seen", R8 "GOMAXPROCS
	// set", R9 "--sync". (SYSCALL clobbers CX and R11.)
	MOVQ	0(SP), R12
	LEAQ	8(SP), R13
	CMPQ	R12, $2
	JLT	start
	MOVQ	8(R13), SI	// argv[1] begins with '-'
	CMPB	(SI), $'-'
	JNE	start
	MOVQ	0(R13), SI	// BX = argv[0]'s base name, not conmon-go-runtime
	MOVQ	SI, BX
base:
	MOVB	(SI), DX
	TESTB	DL, DL
	JZ	based
	INCQ	SI
	CMPB	DL, $'/'
	JNE	base
	MOVQ	SI, BX
	JMP	base
based:
	MOVQ	BX, SI
	LEAQ	runtimeName<>(SB), DI
	MOVQ	$18, CX
	CALL	hasPrefix<>(SB)
	TESTQ	AX, AX
	JNZ	start
	XORQ	R9, R9
	MOVQ	$1, BX	// does an argv[BX] begin with --sync?
args:
	CMPQ	BX, R12
	JGE	env
	MOVQ	(R13)(BX*8), SI
	LEAQ	syncArg<>(SB), DI
	MOVQ	$6, CX
	CALL	hasPrefix<>(SB)
	ORQ	AX, R9
	INCQ	BX
	JMP	args
env:
	LEAQ	8(R13)(R12*8), R14	// envp: after argv's NULL
	XORQ	R15, R15
	XORQ	R8, R8
envloop:
	MOVQ	(R14), SI
	TESTQ	SI, SI
	JZ	envdone
	LEAQ	ourEnv<>(SB), DI
	MOVQ	$11, CX
	CALL	hasPrefix<>(SB)
	TESTQ	AX, AX
	JNZ	start
	MOVQ	(R14), SI
	LEAQ	startEnv<>(SB), DI
	MOVQ	$15, CX
	CALL	hasPrefix<>(SB)
	ORQ	AX, R15
	MOVQ	(R14), SI
	LEAQ	maxprocsEnv<>(SB), DI
	MOVQ	$11, CX
	CALL	hasPrefix<>(SB)
	ORQ	AX, R8
	ADDQ	$8, R14
	JMP	envloop
envdone:
	TESTQ	R9, R9	// --sync: the monitor, no fork
	JNZ	prepare
	TESTQ	R15, R15
	JZ	start

	MOVQ	$AF_UNIX, DI	// socketpair(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0, preforkSock)
	MOVQ	$SOCK_STREAM_CLOEXEC, SI
	XORQ	DX, DX
	LEAQ	·preforkSock(SB), R10
	MOVQ	$SYS_socketpair, AX
	SYSCALL
	TESTQ	AX, AX
	JNZ	start
	MOVQ	$SYS_fork, AX
	SYSCALL
	TESTQ	AX, AX
	JZ	monitor
	JLT	forkfailed
	MOVQ	AX, R12	// the monitor's pid

	// The launcher: wait for the monitor's word and exit with it.
	MOVL	·preforkSock+4(SB), DI
	MOVQ	$SYS_close, AX
	SYSCALL
	MOVQ	$SIGHUP, DI
	LEAQ	ignore<>(SB), SI
	XORQ	DX, DX
	MOVQ	$8, R10
	MOVQ	$SYS_rt_sigaction, AX
	SYSCALL
	MOVQ	$SIGPIPE, DI
	LEAQ	ignore<>(SB), SI
	XORQ	DX, DX
	MOVQ	$8, R10
	MOVQ	$SYS_rt_sigaction, AX
	SYSCALL
read:
	MOVL	·preforkSock(SB), DI
	LEAQ	·preforkWord(SB), SI
	MOVQ	$1, DX
	MOVQ	$SYS_read, AX
	SYSCALL
	CMPQ	AX, $-EINTR
	JEQ	read
	CMPQ	AX, $1
	JNE	failed	// EOF: the monitor ended without a word
	MOVBQZX	·preforkWord(SB), DI
	CMPQ	DI, $const_preforkFallback
	JEQ	fallback
	MOVQ	$SYS_exit_group, AX
	SYSCALL
failed:
	MOVQ	$1, DI
	MOVQ	$SYS_exit_group, AX
	SYSCALL
fallback:
	// The monitor could not join the cgroups and is ending; reap it, and carry on into
	// Go as a launcher whose start byte has been read.
	MOVL	·preforkSock(SB), DI
	MOVQ	$SYS_close, AX
	SYSCALL
reap:
	MOVQ	R12, DI
	XORQ	SI, SI
	XORQ	DX, DX
	XORQ	R10, R10
	MOVQ	$SYS_wait4, AX
	SYSCALL
	CMPQ	AX, $-EINTR
	JEQ	reap
	MOVQ	$1, ·preforkStarted(SB)
	JMP	start

monitor:
	MOVQ	$SYS_setsid, AX	// a session of its own, as a re-executed monitor (§3)
	SYSCALL
	MOVL	·preforkSock(SB), DI
	MOVQ	$SYS_close, AX
	SYSCALL
	MOVQ	$1, ·preforkMonitor(SB)
prepare:
	// The process that is the monitor: the forked child, or the --sync monitor. Map the
	// program's read-only pages in two calls instead of a page fault per 64 KiB as the
	// runtime starts (faults are the bulk of a start-up's cost on a VM); the ranges are
	// kept for releasePrefaulted.
	POPULATE(runtime·text(SB), runtime·etext(SB), 0)
	POPULATE(runtime·rodata(SB), runtime·epclntab(SB), 16)
	// One P, as a re-executed monitor gets it (§3): the runtime reads GOMAXPROCS from the
	// environment on the stack, so unless the caller set it, "GOMAXPROCS=1" is added
	// there. The words from argc to the last variable move down by one; the freed slot
	// before envp's NULL takes the new variable; auxv stays where it is.
	TESTQ	R8, R8
	JNZ	start
	MOVQ	SP, SI
	LEAQ	-8(SP), DI
shift:
	CMPQ	SI, R14	// R14: envp's NULL
	JEQ	shifted
	MOVQ	(SI), AX
	MOVQ	AX, (DI)
	ADDQ	$8, SI
	ADDQ	$8, DI
	JMP	shift
shifted:
	LEAQ	oneProc<>(SB), AX
	MOVQ	AX, (DI)
	SUBQ	$8, SP
	MOVQ	$1, ·preforkOwnMaxProcs(SB)
	JMP	start
forkfailed:
	MOVL	·preforkSock(SB), DI
	MOVQ	$SYS_close, AX
	SYSCALL
	MOVL	·preforkSock+4(SB), DI
	MOVQ	$SYS_close, AX
	SYSCALL
start:
	JMP	_rt0_amd64_linux(SB)
