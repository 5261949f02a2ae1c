! ex_map_and_wait.f90 — the "map and wait" pattern from Fortran: apply one
! function to every element of an array, in parallel, and use the results
! in input order whatever order the workers finish in.
! Python: `for r in executor.map(task, range(10)): print(r)`.
!
! The item function is a BIND(C) module procedure (interface pp_item_fn):
! it runs in a worker process and reaches its element and its result slot
! through pointers into shared memory.
module map_and_wait_kernels
  use, intrinsic :: iso_c_binding
  use ppool
  implicit none
  interface
    integer(c_int) function usleep(us) bind(C, name='usleep')
      import :: c_int
      integer(c_int), value :: us
    end function
  end interface
contains
  ! Sleep a little (a different time per item, so workers finish out of
  ! order), then return the item times ten.
  integer(c_int) function task(it) bind(C) result(rc)
    type(c_ptr), value :: it
    integer(c_int32_t), pointer :: x, y
    call pp_item_in(it, 1, x)
    call pp_item_out(it, y)
    rc = usleep(int(mod(x * 37, 10), c_int) * 10000_c_int)   ! 0..90 ms
    y = 10 * x
    rc = 0
  end function
  ! The same over a column of a matrix: its sum.
  integer(c_int) function column_sum(it) bind(C) result(rc)
    type(c_ptr), value :: it
    real(c_double), pointer :: col(:), s
    call pp_item_in(it, 1, col)
    call pp_item_out(it, s)
    s = sum(col)
    rc = 0
  end function
end module

program ex_map_and_wait
  use, intrinsic :: iso_c_binding
  use ppool
  use map_and_wait_kernels
  implicit none
  type(pp_executor) :: ex
  integer(c_int32_t) :: items(10), results(10)
  real(c_double) :: a(1000, 4), sums(4)
  integer :: i

  call pp_executor_create(ex, max_workers=2)    ! no ierr: a failure stops with its name
  items = [(int(i - 1, c_int32_t), i = 1, 10)]   ! "range(10)"
  call pp_map(ex, task, items, results)          ! chunksize 1, as in Python
  do i = 1, 10
    print '(i0)', results(i)
  end do
  ! Over the columns of a rank-2 array: one item per column, in chunks.
  a = 1
  do i = 1, 4
    a(:, i) = i
  end do
  call pp_map(ex, column_sum, a, sums, chunksize=2)
  print '(a,4(1x,f0.1))', 'column sums:', sums
  call pp_executor_destroy(ex)
end program
