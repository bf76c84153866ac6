//! The stub's first instructions: multiboot headers, the 32-bit entry, and the switch to long
//! mode on identity-mapped 2 MiB pages covering the low 4 GiB.
//!
//! Both bootloaders enter `_start32` in 32-bit protected mode with paging off: multiboot v1 with
//! `eax = 0x2BADB002`, multiboot2 with `eax = 0x36D76289`, and `ebx` pointing at the information
//! structure. The code checks for long mode, builds the temporary tables, enables PAE, long mode,
//! NX (when present) and paging, then calls `stub_main(magic, info)` in 64-bit mode. A CPU without
//! long mode gets a message on COM1 and a stop, never a reboot loop.

/// Multiboot v1 flags: align modules on pages (0), give a memory map (1), use the address
/// fields below (16) so QEMU's `-kernel` accepts this 64-bit ELF.
const MB1_FLAGS: u32 = (1 << 0) | (1 << 1) | (1 << 16);
const MB1_MAGIC: u32 = 0x1BAD_B002;
const MB2_MAGIC: u32 = 0xE852_50D6;
/// The multiboot2 header below: 16 bytes of fields, an 8-byte module-alignment tag, an end tag.
const MB2_LEN: u32 = 32;
const MB1_CHECKSUM: u32 = 0u32.wrapping_sub(MB1_MAGIC.wrapping_add(MB1_FLAGS));
const MB2_CHECKSUM: u32 = 0u32.wrapping_sub(MB2_MAGIC.wrapping_add(MB2_LEN));

core::arch::global_asm!(
    r#"
    .section .multiboot_header, "a"
    .balign 4
mb1_header:
    .long {mb1_magic}
    .long {mb1_flags}
    .long {mb1_checksum}
    .long mb1_header
    .long __stub_start
    .long __load_end
    .long __stub_end
    .long _start32

    .balign 8
mb2_header:
    .long {mb2_magic}
    .long 0
    .long {mb2_len}
    .long {mb2_checksum}
    /* module alignment tag: modules on page boundaries */
    .short 6, 0
    .long 8
    /* end tag */
    .short 0, 0
    .long 8
mb2_header_end:

    .section .boot32, "ax"
    .code32
    .global _start32
_start32:
    cli
    cld
    movl %eax, %edi
    movl %ebx, %esi
    rdtsc
    movl %eax, STUB_ENTRY_TSC
    movl %edx, STUB_ENTRY_TSC + 4
    movl $stub_stack_top, %esp

    /* Long mode present? CPUID 0x80000001 EDX bit 29. */
    movl $0x80000000, %eax
    cpuid
    cmpl $0x80000001, %eax
    jb no_long_mode
    movl $0x80000001, %eax
    cpuid
    testl $(1 << 29), %edx
    jz no_long_mode
    movl %edx, %ebp              /* keep the feature bits: bit 20 is NX */

    /* PML4[0] -> PDPT; PDPT[0..4] -> PD0..PD3; PD entries map 2 MiB each, 4 GiB in all. */
    movl $boot_pdpt, %eax
    orl $3, %eax
    movl %eax, boot_pml4
    movl $boot_pd, %eax
    orl $3, %eax
    movl %eax, boot_pdpt
    addl $4096, %eax
    movl %eax, boot_pdpt + 8
    addl $4096, %eax
    movl %eax, boot_pdpt + 16
    addl $4096, %eax
    movl %eax, boot_pdpt + 24
    xorl %ecx, %ecx
1:
    movl %ecx, %eax
    shll $21, %eax
    orl $0x83, %eax              /* present, writable, 2 MiB */
    movl %eax, boot_pd(,%ecx,8)
    movl %ecx, %eax
    shrl $11, %eax               /* bits 32.. of ecx << 21 */
    movl %eax, boot_pd + 4(,%ecx,8)
    incl %ecx
    cmpl $2048, %ecx
    jb 1b

    movl %cr4, %eax
    orl $(1 << 5), %eax          /* PAE */
    movl %eax, %cr4
    movl $boot_pml4, %eax
    movl %eax, %cr3

    movl $0xC0000080, %ecx       /* EFER */
    rdmsr
    orl $(1 << 8), %eax          /* LME */
    testl $(1 << 20), %ebp
    jz 2f
    orl $(1 << 11), %eax         /* NXE */
2:
    wrmsr

    movl %cr0, %eax
    orl $0x80010000, %eax        /* PG | WP */
    movl %eax, %cr0

    lgdt gdt64_pointer
    ljmp $0x08, $start64

no_long_mode:
    movl $no_long_mode_msg, %esi
3:
    movb (%esi), %al
    testb %al, %al
    jz 4f
    movw $0x3f8, %dx
    outb %al, %dx
    incl %esi
    jmp 3b
4:
    movw $0xf4, %dx
    movl ${boot_failure}, %eax
    outl %eax, %dx
5:
    hlt
    jmp 5b

    .code64
start64:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorw %ax, %ax
    movw %ax, %fs
    movw %ax, %gs
    movl %edi, %edi              /* upper halves are undefined after the switch */
    movl %esi, %esi
    xorl %ebp, %ebp
    call stub_main
6:
    hlt
    jmp 6b

    .section .rodata
    .balign 8
gdt64:
    .quad 0
    .quad 0x00af9a000000ffff     /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff     /* 0x10: data */
gdt64_end:
gdt64_pointer:
    .short gdt64_end - gdt64 - 1
    .long gdt64
no_long_mode_msg:
    .asciz "moxie stub: this CPU has no long mode (x86_64); moxie cannot boot here.\r\n"

    .section .bss
    .balign 4096
boot_pml4: .skip 4096
boot_pdpt: .skip 4096
boot_pd: .skip 4096 * 4
stub_stack: .skip 64 * 1024
stub_stack_top:
    "#,
    mb1_magic = const MB1_MAGIC,
    mb1_flags = const MB1_FLAGS,
    mb2_magic = const MB2_MAGIC,
    mb1_checksum = const MB1_CHECKSUM,
    mb2_checksum = const MB2_CHECKSUM,
    mb2_len = const MB2_LEN,
    boot_failure = const abi::qemu::ExitCode::BootFailure as u32,
    options(att_syntax)
);

/// The TSC at the stub's first instruction, written by `_start32`.
#[unsafe(no_mangle)]
pub static mut STUB_ENTRY_TSC: u64 = 0;
