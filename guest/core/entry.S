/* guest/core/entry.S — guest core: entry point (a jump over the core header,
 * own stack, clear bss, call guest_main, then the EXIT register) and the
 * exception stubs the host's IDT points at. The host starts us at CPL3; only
 * the stubs' path runs at CPL0, from supervisor-only pages (.ktext). */
	.code64

	/* The entry point is the first byte; the core header (core.c) follows
	 * at offset 8, where the host reads it. */
	.section .text.entry, "ax"
	.globl _start
_start:
	jmp guest_start
	.balign 8

	.text
guest_start:
	cld				/* no cli: it faults at CPL3 (IF is off anyway) */
	movq %rdi, %r12			/* boot info pointer from the host */
	leaq guest_stack_top(%rip), %rsp
	/* Clear bss around the stack, which needs no zeroing: every page
	 * written here is a page fault the host handles, and the stack is most
	 * of bss. */
	xorl %eax, %eax
	leaq __bss_start(%rip), %rdi
	leaq guest_stack(%rip), %rcx
	subq %rdi, %rcx
	rep stosb
	leaq guest_stack_top(%rip), %rdi
	leaq __bss_end(%rip), %rcx
	subq %rdi, %rcx
	rep stosb
	movq %r12, %rdi
	call guest_main
	call guest_exit			/* the EXIT register; hlt would fault here */

	/* Supervisor-only pages: under SMEP the CPU runs no user page at
	 * CPL0, so nothing here may call out of .ktext (guest.ld refuses such
	 * a reference). */
	.section .ktext, "ax"
/* Every stub leaves [vector, error code, RIP, CS, RFLAGS, RSP, SS] on the
 * stack: TSS.RSP0's exception stack when the fault came from CPL3. */
.macro exc_noerr n
	.globl guest_exc_\n
guest_exc_\n:
	pushq $0
	pushq $\n
	jmp guest_exc_common
.endm
.macro exc_err n
	.globl guest_exc_\n
guest_exc_\n:
	pushq $\n
	jmp guest_exc_common
.endm

.irp n, 0, 1, 2, 3, 4, 5, 6, 7, 9, 15, 16, 18, 19, 20, 22, 23, 24, 25, 26, 27, 28, 31
	exc_noerr \n
.endr
.irp n, 8, 10, 11, 12, 13, 14, 17, 21, 29, 30
	exc_err \n
.endr

/* CPL0 (interrupt gate, so IF stays off): the only privileged code. */
guest_exc_common:
	cld
	movq %rsp, %rdi
	andq $-16, %rsp
	call guest_exception
2:	cli
	hlt
	jmp 2b

	.section .bss
	.balign 16
guest_stack:
	.skip 65536
guest_stack_top:

	.section .note.GNU-stack, "", @progbits
