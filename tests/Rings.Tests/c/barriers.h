/* io/ring.h leaves mb/rmb/wmb to its includer (the kernel provides them). In user space: a full
 * fence for mb (mfence on x86; the store-load ordering the notify protocol needs), acquire and
 * release fences for rmb/wmb. */
#ifndef RINGS_TEST_BARRIERS_H
#define RINGS_TEST_BARRIERS_H
#define mb()  __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define rmb() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define wmb() __atomic_thread_fence(__ATOMIC_RELEASE)
#endif
