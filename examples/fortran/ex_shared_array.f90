! ex_shared_array.f90 — a big array in shared memory: pp_shm_array gives a
! Fortran pointer into the pool's arena, which every worker sees. Tasks get
! (offset, first, count) and write their part in place: no element copied.
! Then pp_map over shared arrays works in place as well.
module shared_array_kernels
  use, intrinsic :: iso_c_binding
  use, intrinsic :: iso_fortran_env, only: int64
  use ppool
  implicit none
contains
  ! Doubles a(first .. first+count-1) of the shared array at offset.
  integer(c_int) function double_part(t) bind(C) result(rc)
    type(c_ptr), value :: t
    integer(int64), pointer :: arg(:)      ! [offset, n, first, count]
    integer(int64), pointer :: a(:)
    call pp_task_arg(t, arg)
    call pp_task_shm(t, arg(1), arg(2), a)
    a(arg(3):arg(3) + arg(4) - 1) = 2 * a(arg(3):arg(3) + arg(4) - 1)
    rc = 0
  end function
  integer(c_int) function halve(it) bind(C) result(rc)
    type(c_ptr), value :: it
    integer(int64), pointer :: x, y
    call pp_item_in(it, 1, x)
    call pp_item_out(it, y)
    y = x / 2
    rc = 0
  end function
end module

program ex_shared_array
  use, intrinsic :: iso_c_binding
  use, intrinsic :: iso_fortran_env, only: int64
  use ppool
  use shared_array_kernels
  implicit none
  integer(int64), parameter :: n = 2_int64**20, parts = 8
  type(pp_executor) :: ex
  type(pp_future) :: fs(parts)
  type(pp_map_status) :: st
  integer(int64), pointer :: a(:), b(:)
  integer(int64) :: i, off, want

  call pp_executor_create(ex, max_workers=2)
  call pp_shm_array(ex, n, a)              ! 8 MiB that every worker sees
  call pp_shm_array(ex, n, b)
  a = [(i, i = 1, n)]
  off = pp_shm_offset(ex, a)
  do i = 1, parts
    call pp_submit(ex, double_part, [off, n, (i - 1) * (n / parts) + 1, n / parts], fs(i))
  end do
  call pp_wait(fs)
  want = n * (n + 1)                       ! 2 * (1 + ... + n)
  print '(a,i0,a,i0,a)', 'sum after doubling: ', sum(a), ' (expected ', want, ')'
  print '(a,i0,a,i0,a)', 'a(1) = ', a(1), ', a(n) = ', a(n), ': changed in place'
  call pp_map(ex, halve, a, b, chunksize=4096, status=st)
  print '(a,l1,a,i0,a)', 'map over shared arrays: b == 1..n is ', all(b == [(i, i = 1, n)]), &
    ', ', st%staged_bytes + st%result_bytes, ' bytes copied'
  do i = 1, parts
    call pp_future_release(fs(i))
  end do
  call pp_shm_free(ex, a)
  call pp_shm_free(ex, b)
  call pp_executor_destroy(ex)
end program
