/* ARM semihosting: talk to the debugger (or emulator) through BKPT 0xAB. */
#ifndef SEMIHOST_H
#define SEMIHOST_H

void semihost_write0(const char *s);
void semihost_exit(int ok) __attribute__((noreturn));

#endif
