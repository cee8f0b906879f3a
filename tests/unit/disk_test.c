/* disk_test.c - level classification with both kinds of threshold, and the
 * reserve decisions across warn/critical/recovery. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "disk/disk.h"

#define MIB (1024ull * 1024ull)
#define GIB (1024ull * MIB)

static const struct lucy_disk_thresholds t = {10, 1024, 5, 256};

static void percent_threshold(void **state)
{
    (void)state;
    /* a 100 GiB disk: 10% = 10 GiB is above the 1 GiB floor, so percent rules */
    assert_int_equal(lucy_disk_level_of(20 * GIB, 100 * GIB, &t), LUCY_DISK_OK);
    assert_int_equal(lucy_disk_level_of(10 * GIB, 100 * GIB, &t), LUCY_DISK_OK); /* not below */
    assert_int_equal(lucy_disk_level_of(10 * GIB - 1, 100 * GIB, &t), LUCY_DISK_WARN);
    assert_int_equal(lucy_disk_level_of(5 * GIB - 1, 100 * GIB, &t), LUCY_DISK_CRITICAL);
}

static void absolute_threshold(void **state)
{
    (void)state;
    /* a 2 GiB disk: 50% free but under 1 GiB absolute -> warn */
    assert_int_equal(lucy_disk_level_of(1023 * MIB, 2 * GIB, &t), LUCY_DISK_WARN);
    assert_int_equal(lucy_disk_level_of(255 * MIB, 2 * GIB, &t), LUCY_DISK_CRITICAL);
    assert_int_equal(lucy_disk_level_of(1536 * MIB, 2 * GIB, &t), LUCY_DISK_OK);
    assert_int_equal(lucy_disk_level_of(0, 0, &t), LUCY_DISK_CRITICAL);
}

static void reserve_decisions(void **state)
{
    (void)state;
    const struct lucy_disk_thresholds small = {10, 4, 5, 2}; /* a 16 MiB tmpfs */
    uint64_t total = 16 * MIB, reserve = 2 * MIB;
    /* ok and room: create */
    assert_int_equal(lucy_disk_reserve_action(LUCY_DISK_OK, 0, 12 * MIB, total, reserve, &small),
                     1);
    /* already there: nothing */
    assert_int_equal(lucy_disk_reserve_action(LUCY_DISK_OK, 1, 12 * MIB, total, reserve, &small),
                     0);
    /* warn: keep it, do not create it */
    assert_int_equal(lucy_disk_reserve_action(LUCY_DISK_WARN, 1, 3 * MIB, total, reserve, &small),
                     0);
    assert_int_equal(lucy_disk_reserve_action(LUCY_DISK_WARN, 0, 3 * MIB, total, reserve, &small),
                     0);
    /* critical: release */
    assert_int_equal(
        lucy_disk_reserve_action(LUCY_DISK_CRITICAL, 1, 1 * MIB, total, reserve, &small), -1);
    assert_int_equal(
        lucy_disk_reserve_action(LUCY_DISK_CRITICAL, 0, 1 * MIB, total, reserve, &small), 0);
    /* ok, but creating would drop straight into critical: wait */
    assert_int_equal(lucy_disk_reserve_action(LUCY_DISK_OK, 0, 4 * MIB + 1, total, 3 * MIB, &small),
                     0);
    /* disabled reserve: never anything */
    assert_int_equal(lucy_disk_reserve_action(LUCY_DISK_CRITICAL, 1, 0, total, 0, &small), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(percent_threshold),
        cmocka_unit_test(absolute_threshold),
        cmocka_unit_test(reserve_decisions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
