/* tests/kvm/ops/cpl3.c — checks from inside that ops run at CPL3, then
 * faults at a fixed address: ud2 at INSTAR_OP_ADDR + 10 (vector 6) when CS's
 * RPL is 3, a divide error (vector 0) otherwise. Hand-written so the RIP the
 * host reports can be checked exactly. */
__asm__(".section .text.entry, \"ax\"\n"
	".globl _start\n"
	"_start:\n"
	"	movl %cs, %eax\n" /* 8c c8 */
	"	andl $3, %eax\n"  /* 83 e0 03 */
	"	cmpl $3, %eax\n"  /* 83 f8 03 */
	"	jne 1f\n"	  /* 75 02 */
	"	ud2\n"		  /* offset 10 */
	"1:	xorl %ecx, %ecx\n"
	"	divl %ecx\n"
	"	.text\n");
