! A Fortran program built against an installed ppool (CMake component
! fortran, or pkg-config ppool-fortran): prints "fconsumer: 42" and the
! start method, so the script test can check it under each one.
module fconsumer_tasks
  use, intrinsic :: iso_c_binding
  use ppool
  implicit none
contains
  integer(c_int) function twice(t) bind(C) result(rc)
    type(c_ptr), value :: t
    integer(c_int32_t), pointer :: x
    call pp_task_arg(t, x)
    rc = pp_task_set_result(t, 2 * x)
  end function
end module

program fconsumer
  use, intrinsic :: iso_c_binding
  use ppool
  use fconsumer_tasks
  implicit none
  type(pp_executor) :: ex
  type(pp_future) :: f
  integer(c_int32_t), pointer :: r
  integer :: ierr
  call pp_executor_create(ex, max_workers=1, ierr=ierr)
  if (ierr /= 0) error stop 'create failed'
  call pp_submit(ex, twice, 21_c_int32_t, f)
  call pp_future_result(f, r)
  print '(a,i0)', 'fconsumer: ', r
  call pp_future_release(f)
  call pp_executor_destroy(ex)
end program
